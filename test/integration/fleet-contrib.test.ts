/**
 * The files in contrib/ that ship beside the fleet server, checked the way an operator would load them: the Prometheus
 * alert rules through the real `promtool` (`check rules`, and `test rules` with contrib/prometheus/alerts.test.yml,
 * plus broken copies that promtool must refuse, so the checks can fail), and the Grafana dashboard (valid JSON, unique
 * panel ids, panels that do not overlap, every panel and query on the `datasource` template variable, core panels only,
 * every query valid PromQL, and only metric names the fleet server exports: FLEET_METRIC_NAMES, read off the server's
 * own registry, so a renamed metric fails here until the rules and the dashboard follow).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, test } from 'node:test';
import YAML from 'yaml';
import { fleetMetricNames } from '../../operator/fleet/metrics';
import { ROOT, tmpDir } from '../support/cli';
import { PROMTOOL } from '../support/prometheus';

const FLEET_METRIC_NAMES = fleetMetricNames();

/** The alerts the fleet needs (issue 13 and docs/scaling.md); alerts.yml may have more, never fewer. */
const REQUIRED_ALERTS = [
  'EdgeheadDeviceDown',
  'EdgeheadDeviceSilent',
  'EdgeheadDeviceHot',
  'EdgeheadDeviceQueueing',
  'EdgeheadDeviceProblems',
  'EdgeheadRolloutHalted',
  'EdgeheadFleetServerNoIngest',
];

const RULES = path.join(ROOT, 'contrib', 'prometheus', 'alerts.yml');
const RULE_TESTS = path.join(ROOT, 'contrib', 'prometheus', 'alerts.test.yml');
const DASHBOARD = path.join(ROOT, 'contrib', 'grafana', 'edgehead-fleet.json');
const skip = !PROMTOOL && 'promtool is not installed (/usr/bin/promtool, Debian package prometheus): the rule checks are skipped';

/** Grafana's built-in panel types: the dashboard must import without plugins. */
const CORE_PANELS = new Set(['row', 'stat', 'table', 'timeseries', 'bargauge', 'gauge', 'barchart', 'piechart', 'state-timeline', 'status-history', 'heatmap', 'text']);

const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2']);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, label matchers, ranges and grouping
 * clauses are removed, that are not keywords and not calls (functions and aggregations are followed by "(").
 */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/(\d[\w.]*)|([A-Za-z_:][\w:]*)(\s*\()?/g)) {
    const [, num, ident, call] = m;
    if (num || call || PROMQL_KEYWORDS.has(ident!)) continue;
    names.add(ident!);
  }
  return [...names];
}

/** The metric selector of a Grafana `label_values(selector, label)` variable query, as an expression. */
function variableExpr(query: string): string {
  const m = /^label_values\((.*),\s*\w+\s*\)$/.exec(query.trim());
  assert.ok(m, `variable query is label_values(selector, label): ${query}`);
  return m[1]!;
}

function promtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL!, args, { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** A copy of alerts.yml (and its tests) in a temp folder with `from` replaced by `to` (which must occur). */
function brokenCopy(from: string, to: string): { rules: string; tests: string } {
  const text = fs.readFileSync(RULES, 'utf8');
  assert.ok(text.includes(from), `alerts.yml contains ${JSON.stringify(from)}`);
  const dir = tmpDir('contrib-rules-');
  const rules = path.join(dir, 'alerts.yml');
  const tests = path.join(dir, 'alerts.test.yml');
  fs.writeFileSync(rules, text.replace(from, to));
  fs.copyFileSync(RULE_TESTS, tests);
  return { rules, tests };
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function rules(): Rule[] {
  const doc = YAML.parse(fs.readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

interface Target {
  expr?: string;
  datasource?: { type?: string; uid?: string };
}

interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}

interface Dashboard {
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown; datasource?: { type?: string; uid?: string } }[] };
}

function dashboard(): Dashboard {
  return JSON.parse(fs.readFileSync(DASHBOARD, 'utf8')) as Dashboard;
}

/** Every panel, rows' nested panels included. */
function allPanels(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

function dashboardExprs(d: Dashboard): { where: string; expr: string }[] {
  const fromPanels = allPanels(d).flatMap((p) => (p.targets ?? []).map((t, i) => ({ where: `panel ${p.id} "${p.title}" target ${i}`, expr: t.expr ?? '' })));
  const fromVariables = d.templating.list.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${v.name}`, expr: variableExpr(String(v.query)) }));
  return [...fromPanels, ...fromVariables];
}

const isDatasourceVariable = (ds: { type?: string; uid?: string } | undefined) => ds?.type === 'prometheus' && ds.uid === '${datasource}';

describe('metric names parsed out of PromQL', () => {
  test('finds the selected metrics, not functions, aggregations, labels, keywords or durations', () => {
    const expr =
      'sum by (label) (rate(edgehead_device_predictions_total{device=~"$device", label!="x"}[$__rate_interval] offset 5m)) ' +
      'and on (device) group by (device) (edgehead_device_up{group=~"$group"}) or vector(0) > bool 1e3';
    assert.deepEqual(metricNames(expr).sort(), ['edgehead_device_predictions_total', 'edgehead_device_up']);
    assert.deepEqual(metricNames('deriv(max by (device) (edgehead_device_queue_depth)[15m:1m]) > 0'), ['edgehead_device_queue_depth']);
  });

  test('a misspelt metric is caught', () => {
    const unknown = metricNames('max by (device) (edgehead_device_uptime) == 0').filter((n) => !FLEET_METRIC_NAMES.includes(n));
    assert.deepEqual(unknown, ['edgehead_device_uptime']);
  });
});

describe('contrib/prometheus/alerts.yml', () => {
  test('promtool check rules accepts it', { skip }, () => {
    const r = promtool(['check', 'rules', RULES]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS: \d+ rules found/);
  });

  test('promtool test rules: every alert fires on its case and stays quiet on the others (alerts.test.yml)', { skip }, () => {
    const r = promtool(['test', 'rules', RULE_TESTS]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, /SUCCESS/);
  });

  test('has every alert the fleet needs, each with a severity, a summary and a description', () => {
    const all = rules();
    const names = all.map((r) => r.alert);
    for (const name of REQUIRED_ALERTS) assert.ok(names.includes(name), `alerts.yml has ${name}`);
    assert.equal(new Set(names).size, names.length, 'alert names are unique');
    for (const r of all) {
      assert.ok(r.alert, `only alerting rules here (got record ${r.record})`);
      assert.match(r.labels?.severity ?? '', /^(info|warning|critical)$/, `${r.alert}: severity`);
      assert.ok(r.annotations?.summary, `${r.alert}: summary`);
      assert.ok(r.annotations?.description, `${r.alert}: description`);
      if (r.alert.startsWith('EdgeheadDevice')) {
        assert.match(r.annotations.summary, /\{\{ \$labels\.device \}\}/, `${r.alert}: the summary names the device`);
        assert.match(r.annotations.description, /\{\{ \$labels\.device \}\}/, `${r.alert}: the description names the device`);
      }
    }
    const tests = fs.readFileSync(RULE_TESTS, 'utf8');
    for (const name of names) assert.match(tests, new RegExp(`alertname: ${name}\\b`), `alerts.test.yml tests ${name}`);
  });

  test('uses only metrics the fleet server exports', () => {
    for (const r of rules()) {
      const names = metricNames(r.expr);
      assert.ok(names.length > 0, `${r.alert}: selects a metric`);
      for (const n of names) assert.ok(FLEET_METRIC_NAMES.includes(n), `${r.alert}: ${n} is not a fleet server metric`);
    }
  });

  test('a rule file with a syntax error fails promtool check rules', { skip }, () => {
    const { rules: broken } = brokenCopy('expr: max by (device) (edgehead_device_up) == 0', 'expr: max by (device) (edgehead_device_up == 0');
    const r = promtool(['check', 'rules', broken]);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /FAILED|error/i);
  });

  test('a rule that no longer does what its case says fails promtool test rules', { skip }, () => {
    const { tests } = brokenCopy('max by (device) (edgehead_device_cpu_temperature_celsius) > 80', 'max by (device) (edgehead_device_cpu_temperature_celsius) > 90');
    const r = promtool(['test', 'rules', tests]);
    assert.notEqual(r.status, 0, r.output);
    assert.match(r.output, /FAILED[\s\S]*EdgeheadDeviceHot/);
  });
});

describe('contrib/grafana/edgehead-fleet.json', () => {
  test('parses, with a datasource variable of type prometheus and group and device variables on it', () => {
    const d = dashboard();
    assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`);
    assert.ok(d.uid && d.title);
    const vars = new Map(d.templating.list.map((v) => [v.name, v]));
    assert.equal(vars.get('datasource')?.type, 'datasource');
    assert.equal(vars.get('datasource')?.query, 'prometheus');
    for (const name of ['group', 'device']) {
      const v = vars.get(name);
      assert.equal(v?.type, 'query', `variable ${name}`);
      assert.ok(isDatasourceVariable(v.datasource), `variable ${name} queries \${datasource}`);
      assert.match(String(v.query), new RegExp(`^label_values\\(.*, ${name}\\)$`));
    }
  });

  test('panel ids are unique and panels do not overlap', () => {
    const panels = allPanels(dashboard());
    const ids = panels.map((p) => p.id);
    assert.ok(ids.every((id) => Number.isInteger(id)), 'every panel has an id');
    assert.equal(new Set(ids).size, ids.length, `duplicate ids in ${ids.join(',')}`);
    for (const [i, a] of panels.entries()) {
      assert.ok(a.gridPos.x >= 0 && a.gridPos.x + a.gridPos.w <= 24, `panel ${a.id} "${a.title}" fits the 24-column grid`);
      for (const b of panels.slice(i + 1)) {
        const apart = a.gridPos.x + a.gridPos.w <= b.gridPos.x || b.gridPos.x + b.gridPos.w <= a.gridPos.x || a.gridPos.y + a.gridPos.h <= b.gridPos.y || b.gridPos.y + b.gridPos.h <= a.gridPos.y;
        assert.ok(apart, `panels ${a.id} "${a.title}" and ${b.id} "${b.title}" overlap`);
      }
    }
  });

  test('every panel and every query uses the datasource variable; only core panels', () => {
    for (const p of allPanels(dashboard())) {
      assert.ok(isDatasourceVariable(p.datasource), `panel ${p.id} "${p.title}" datasource ${JSON.stringify(p.datasource)}`);
      assert.ok(CORE_PANELS.has(p.type), `panel ${p.id} "${p.title}": ${p.type} is not a core Grafana panel`);
      if (p.type === 'row') continue;
      assert.ok((p.targets ?? []).length > 0, `panel ${p.id} "${p.title}" has queries`);
      for (const t of p.targets!) assert.ok(isDatasourceVariable(t.datasource), `panel ${p.id} "${p.title}" query datasource ${JSON.stringify(t.datasource)}`);
    }
  });

  test('queries only metrics the fleet server exports, and shows every one of them', () => {
    const used = new Set<string>();
    for (const { where, expr } of dashboardExprs(dashboard())) {
      const names = metricNames(expr);
      assert.ok(names.length > 0, `${where}: selects a metric`);
      for (const n of names) {
        assert.ok(FLEET_METRIC_NAMES.includes(n), `${where}: ${n} is not a fleet server metric`);
        used.add(n);
      }
    }
    assert.deepEqual(FLEET_METRIC_NAMES.filter((m) => !used.has(m)), [], 'metrics without a panel');
  });

  test('the Devices down and Heads in use queries give the right answer over two replicas (promtool test rules)', { skip }, () => {
    const d = dashboard();
    const exprOf = (title: string) => {
      const p = allPanels(d).find((x) => x.title === title);
      assert.ok(p?.targets?.[0]?.expr, `panel "${title}"`);
      return p.targets[0].expr;
    };
    // The group variable set to kitchen and hall, the device variable to All, as Grafana would expand them.
    const expand = (expr: string) => expr.replace(/\$group/g, 'kitchen|hall').replace(/\$device/g, '.*');
    const dir = tmpDir('contrib-dashboard-');
    const series = (name: string, labels: string, values: string) => ({ series: `${name}{${labels}}`, values });
    fs.writeFileSync(path.join(dir, 'rules.yml'), YAML.stringify({ groups: [{ name: 'd', rules: [{ record: 'down', expr: expand(exprOf('Devices down')) }, { record: 'heads', expr: expand(exprOf('Heads in use')) }] }] }));
    const cases = {
      rule_files: ['rules.yml'],
      evaluation_interval: '1m',
      tests: [
        {
          interval: '1m',
          input_series: [
            // cam1 offline, seen by both replicas (b more recently); cam2 online; cam3 offline, never heard live;
            // cam4 offline in two groups, one selected; cam5 offline in a group not selected.
            series('edgehead_device_up', 'device="cam1",group="kitchen",instance="a"', '0x5'),
            series('edgehead_device_up', 'device="cam1",group="kitchen",instance="b"', '0x5'),
            series('edgehead_device_up', 'device="cam2",group="kitchen",instance="a"', '1x5'),
            series('edgehead_device_up', 'device="cam3",group="hall",instance="a"', '0x5'),
            series('edgehead_device_up', 'device="cam4",group="garage,kitchen",instance="a"', '0x5'),
            series('edgehead_device_up', 'device="cam5",group="garage",instance="a"', '0x5'),
            series('edgehead_device_last_seen_seconds', 'device="cam1",instance="a"', '100x5'),
            series('edgehead_device_last_seen_seconds', 'device="cam1",instance="b"', '50x5'),
            series('edgehead_device_last_seen_seconds', 'device="cam2",instance="a"', '5x5'),
            series('edgehead_device_last_seen_seconds', 'device="cam4",instance="b"', '70x5'),
            series('edgehead_device_head_info', 'device="cam1",head_id="k",head_version="3",instance="a"', '1x5'),
            series('edgehead_device_head_info', 'device="cam1",head_id="k",head_version="3",instance="b"', '1x5'),
            series('edgehead_device_head_info', 'device="cam2",head_id="k",head_version="4",instance="a"', '1x5'),
            series('edgehead_device_head_info', 'device="cam5",head_id="k",head_version="3",instance="a"', '1x5'),
          ],
          promql_expr_test: [
            {
              expr: 'down',
              eval_time: '2m',
              exp_samples: [
                { labels: 'down{device="cam1",group="kitchen"}', value: 50 },
                { labels: 'down{device="cam3",group="hall"}', value: -1 },
                { labels: 'down{device="cam4",group="garage,kitchen"}', value: 70 },
              ],
            },
            {
              expr: 'heads',
              eval_time: '2m',
              exp_samples: [
                { labels: 'heads{head_id="k",head_version="3"}', value: 1 },
                { labels: 'heads{head_id="k",head_version="4"}', value: 1 },
              ],
            },
          ],
        },
      ],
    };
    const file = path.join(dir, 'dashboard.test.yml');
    fs.writeFileSync(file, YAML.stringify(cases));
    const r = promtool(['test', 'rules', file]);
    assert.equal(r.status, 0, r.output);
  });

  test('every query is valid PromQL (promtool check rules on them as recording rules)', { skip }, () => {
    // Grafana's variables, replaced by what Grafana would put there.
    const grafana = (expr: string) =>
      expr
        .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
        .replace(/\$\{?(device|group)\}?/g, '.*');
    const exprs = dashboardExprs(dashboard());
    const doc = { groups: [{ name: 'dashboard', rules: exprs.map((e, i) => ({ record: `dashboard:query_${i}`, expr: grafana(e.expr) })) }] };
    const file = path.join(tmpDir('contrib-dashboard-'), 'queries.yml');
    fs.writeFileSync(file, YAML.stringify(doc));
    const r = promtool(['check', 'rules', file]);
    assert.equal(r.status, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  });
});
