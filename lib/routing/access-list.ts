import { BlockList, isIPv4, isIPv6 } from 'node:net';
import type { AccessLists } from '../config/types.js';

/**
 * Decides whether a client address may be served: `deny` wins over `allow`; an
 * empty `allow` allows every IP address. Fails closed: anything that is not an
 * IP address ('unknown' when the socket closed before its address was read,
 * or text no parser accepts) is refused, even by a list with only `deny`.
 */
export type AccessCheck = (clientAddress: string) => boolean;

/**
 * Ranges of one family only: an IPv4 client is checked against IPv4 ranges
 * and an IPv6 client against IPv6 ranges (as nginx does), so `::/0` does not
 * also match every IPv4 client. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
 * is an IPv4 client.
 */
interface RangesByFamily {
  ipv4: BlockList | null;
  ipv6: BlockList | null;
}

function toRanges(cidrs: readonly string[]): RangesByFamily | null {
  if (cidrs.length === 0) return null;
  const ranges: RangesByFamily = { ipv4: null, ipv6: null };
  for (const cidr of cidrs) {
    const [address, prefix] = cidr.split('/') as [string, string];
    const family = isIPv4(address) ? 'ipv4' : 'ipv6';
    (ranges[family] ??= new BlockList()).addSubnet(address, Number(prefix), family);
  }
  return ranges;
}

const ipv4Mapped = new BlockList();
ipv4Mapped.addSubnet('::ffff:0:0', 96, 'ipv6');

type AddressKind = 'ipv4' | 'ipv4-mapped' | 'ipv6';

/** Which ranges an address is checked against; null when it is not an IP address. */
function kindOf(address: string): AddressKind | null {
  if (isIPv4(address)) return 'ipv4';
  if (!isIPv6(address)) return null;
  return ipv4Mapped.check(address, 'ipv6') ? 'ipv4-mapped' : 'ipv6';
}

function contains(ranges: RangesByFamily, address: string, kind: AddressKind): boolean {
  if (kind === 'ipv4') return ranges.ipv4?.check(address, 'ipv4') ?? false;
  // BlockList compares a mapped address with IPv4 ranges itself.
  if (kind === 'ipv4-mapped') return ranges.ipv4?.check(address, 'ipv6') ?? false;
  return ranges.ipv6?.check(address, 'ipv6') ?? false;
}

/** Builds the check for a listener's or route's lists (CIDRs as the config loader normalizes them); null when there is nothing to check. */
export function buildAccessCheck(lists: AccessLists): AccessCheck | null {
  const allow = toRanges(lists.allow);
  const deny = toRanges(lists.deny);
  if (allow === null && deny === null) return null;
  return (clientAddress) => {
    const kind = kindOf(clientAddress);
    if (kind === null) return false;
    if (deny !== null && contains(deny, clientAddress, kind)) return false;
    return allow === null || contains(allow, clientAddress, kind);
  };
}
