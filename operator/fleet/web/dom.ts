/**
 * A tiny element builder for the dashboard: h('td', { class: 'num' }, '12'). Text goes in as text nodes (never
 * innerHTML), so device names and error messages from the wire cannot inject markup.
 */

type Attr = string | number | boolean | undefined | null | ((e: Event) => void);
type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, Attr> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.replace(/^on/, ''), v);
    else if (k === 'class') el.className = String(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(typeof c === 'number' ? String(c) : c);
  return el;
}

/** Replaces an element's children. */
export function setChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren(...children.filter((c): c is Node | string | number => c !== null && c !== undefined && c !== false).map((c) => (typeof c === 'number' ? String(c) : c)));
}

/** Sets text only when it changed (a write the browser would otherwise redo for nothing). */
export function setText(el: Element, text: string): void {
  if (el.textContent !== text) el.textContent = text;
}
