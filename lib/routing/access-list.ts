import { BlockList, isIPv4 } from 'node:net';
import type { AccessLists } from '../config/types.js';

/** Decides whether a client address may be served: `deny` wins over `allow`; an empty `allow` allows everyone. */
export type AccessCheck = (clientAddress: string) => boolean;

function toBlockList(cidrs: readonly string[]): BlockList | null {
  if (cidrs.length === 0) return null;
  const list = new BlockList();
  for (const cidr of cidrs) {
    const [address, prefix] = cidr.split('/') as [string, string];
    list.addSubnet(address, Number(prefix), isIPv4(address) ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** Builds the check for a listener's or route's lists (CIDRs as the config loader normalizes them); null when there is nothing to check. */
export function buildAccessCheck(lists: AccessLists): AccessCheck | null {
  const allow = toBlockList(lists.allow);
  const deny = toBlockList(lists.deny);
  if (allow === null && deny === null) return null;
  // BlockList matches IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) against IPv4 ranges and back.
  return (clientAddress) => {
    const family = isIPv4(clientAddress) ? 'ipv4' : 'ipv6';
    if (deny?.check(clientAddress, family)) return false;
    return allow === null || allow.check(clientAddress, family);
  };
}
