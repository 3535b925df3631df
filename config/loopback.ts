/** Whether a broker URL names this machine (loopback), where the zero-config defaults are safe to use. */

/** localhost, 127.0.0.0/8, ::1 (with or without brackets), ::ffff:127.x.y.z. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h.endsWith('.localhost') || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h) || /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}

/** True when the broker URL's host is a loopback address (any scheme); false for other hosts and unparsable URLs. */
export function isLoopbackUrl(url: string): boolean {
  try {
    return isLoopbackHost(new URL(url).hostname);
  } catch {
    return false;
  }
}
