process.env.TZ = 'Asia/Kolkata'; // UTC+05:30, no DST: shows that windows are read in local time, not UTC
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inWindow, parseWindow } from '../../agent/schedule/window';
import { EdgeheadError } from '../../base/errors';

const at = (h: number, m: number, s = 0) => new Date(2024, 0, 15, h, m, s); // local time

test('parseWindow reads "HH:MM-HH:MM" as minutes after local midnight', () => {
  assert.deepEqual(parseWindow('06:00-20:00'), { start: 360, end: 1200 });
  assert.deepEqual(parseWindow('22:30-06:05'), { start: 1350, end: 365 });
  assert.deepEqual(parseWindow('00:00-23:59'), { start: 0, end: 1439 });
});

test('parseWindow refuses malformed windows and empty ones with BAD_CONFIG naming the key', () => {
  for (const bad of ['6:00-20:00', '06:00-24:00', '06:60-20:00', '06:00 - 20:00', '06:00', '', '06:00-06:00']) {
    assert.throws(
      () => parseWindow(bad),
      (e) => e instanceof EdgeheadError && e.code === 'BAD_CONFIG' && e.message.startsWith('schedule.activeWindow:'),
      bad,
    );
  }
});

test('inWindow: start inclusive, end exclusive, by local hour and minute', () => {
  const w = parseWindow('06:00-20:00');
  assert.equal(inWindow(w, at(5, 59, 59)), false);
  assert.equal(inWindow(w, at(6, 0)), true);
  assert.equal(inWindow(w, at(12, 0)), true);
  assert.equal(inWindow(w, at(19, 59, 59)), true);
  assert.equal(inWindow(w, at(20, 0)), false);
  assert.equal(inWindow(w, at(0, 0)), false);
});

test('inWindow: a window crossing midnight', () => {
  const w = parseWindow('22:00-06:00');
  assert.equal(inWindow(w, at(21, 59)), false);
  assert.equal(inWindow(w, at(22, 0)), true);
  assert.equal(inWindow(w, at(23, 59, 59)), true);
  assert.equal(inWindow(w, at(0, 0)), true);
  assert.equal(inWindow(w, at(5, 59)), true);
  assert.equal(inWindow(w, at(6, 0)), false);
  assert.equal(inWindow(w, at(12, 0)), false);
});

test('inWindow uses the local time zone, not UTC', () => {
  const w = parseWindow('06:00-20:00');
  assert.equal(inWindow(w, new Date(Date.UTC(2024, 0, 15, 0, 30))), true, '00:30Z is 06:00 in Kolkata');
  assert.equal(inWindow(w, new Date(Date.UTC(2024, 0, 15, 0, 29))), false, '00:29Z is 05:59 in Kolkata');
  assert.equal(inWindow(w, new Date(Date.UTC(2024, 0, 15, 14, 29))), true, '14:29Z is 19:59 in Kolkata');
  assert.equal(inWindow(w, new Date(Date.UTC(2024, 0, 15, 14, 30))), false, '14:30Z is 20:00 in Kolkata');
});
