/** "::ffff:192.0.2.1" → "192.0.2.1": dual-stack listeners see IPv4 clients as mapped addresses. */
export function canonicalAddress(address: string | undefined): string {
  if (address === undefined) return 'unknown';
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

export function formatPeer(address: string, port: number | undefined): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
