/** The http origin of a listen address: an IPv6 host goes in brackets (http://[::1]:8080). */
export function listenOrigin(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
