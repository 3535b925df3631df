/**
 * The fleet dashboard's entry point (bundled by build.ts into assets/app.js + assets/app.css): loads the fleet, keeps
 * it live from the event stream, and shows one page per hash route:
 *
 *   #/              the fleet table (fleet-table.ts)
 *   #/device/<id>   one device: facts, charts, snapshot (device-page.ts)
 *   #/rollouts      rollouts and the form that starts one (rollouts-page.ts)
 *   #/label[/<c>]   label pulled samples: unlabeled, or class <c> (label-page.ts; needs dataset.dir)
 *
 * With token auth a 401 shows the login form; the token is kept in sessionStorage (api.ts).
 */
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { setToken, token, Unauthorized } from './api';
import { DevicePage } from './device-page';
import { h } from './dom';
import { FleetTable } from './fleet-table';
import { LabelPage } from './label-page';
import { RolloutsPage } from './rollouts-page';
import { openEventStream } from './sse-client';
import { FleetStore } from './store';

interface Page {
  destroy(): void;
}

const store = new FleetStore();
const main = document.getElementById('main')!;
const live = document.getElementById('live')!;
const logout = document.getElementById('logout') as HTMLButtonElement;
let page: Page | undefined;
let stream: { close(): void } | undefined;

function setLive(state: 'connecting' | 'live' | 'reconnecting' | 'signed-out'): void {
  live.dataset.state = state;
  live.textContent = state;
}

function route(): void {
  page?.destroy();
  const hash = location.hash.replace(/^#/, '') || '/';
  const device = /^\/device\/(.+)$/.exec(hash);
  const label = /^\/label(?:\/(.+))?$/.exec(hash);
  const nav = hash.startsWith('/rollouts') ? 'rollouts' : label ? 'label' : device ? '' : 'fleet';
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a')) a.classList.toggle('active', a.dataset.nav === nav);
  if (device) page = new DevicePage(store, main, decodeURIComponent(device[1]!));
  else if (hash.startsWith('/rollouts')) page = new RolloutsPage(store, main);
  else if (label) page = new LabelPage(main, label[1] === undefined ? undefined : decodeURIComponent(label[1]));
  else page = new FleetTable(store, main);
}

function showLogin(failed: boolean): void {
  page?.destroy();
  page = undefined;
  setLive('signed-out');
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'current-password', required: true, 'aria-label': 'Access token' });
  const form = h(
    'form',
    { class: 'login' },
    h('h2', {}, 'Sign in'),
    h('p', {}, 'This fleet server needs its access token (auth.token / auth.tokenFile). It is kept in this tab only.'),
    failed ? h('p', { class: 'error' }, 'That token was not accepted.') : null,
    input,
    h('button', { type: 'submit' }, 'Sign in'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    setToken(input.value);
    void start();
  });
  main.replaceChildren(form);
  input.focus();
}

function showFailure(e: unknown): void {
  if (e instanceof Unauthorized) {
    if (e.bearer) return showLogin(token() !== null);
    main.replaceChildren(h('p', { class: 'error' }, 'Not authorized: reload the page to sign in again.'));
    return;
  }
  main.replaceChildren(h('p', { class: 'error' }, `Could not load the fleet: ${(e as Error).message}`));
}

async function start(): Promise<void> {
  stream?.close();
  setLive('connecting');
  try {
    await store.load();
  } catch (e) {
    return showFailure(e);
  }
  logout.hidden = token() === null;
  route();
  let first = true;
  stream = openEventStream('api/events', {
    message: (m) => store.apply(m),
    state: (connected) => {
      setLive(connected ? 'live' : 'reconnecting');
      // Whatever happened while the stream was down is reloaded in full.
      if (connected && !first) store.load().catch(showFailure);
      first = false;
    },
    unauthorized: (e) => showFailure(e),
  });
}

window.addEventListener('hashchange', () => {
  if (live.dataset.state !== 'signed-out') route();
});
logout.addEventListener('click', () => {
  setToken(null);
  stream?.close();
  showLogin(false);
});
void start();
