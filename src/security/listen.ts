/**
 * `/metrics` is plain HTTP: it stays on loopback unless the operator says otherwise, and a listener
 * beyond loopback is logged as a warning (put it behind a TLS-terminating proxy or a firewall).
 */
export function isLoopbackListen(listen: string): boolean {
  const host = listen.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}
