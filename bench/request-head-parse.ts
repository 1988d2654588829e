// `npx tsx bench/request-head-parse.ts`: what parseRequestHead costs on a
// plain-HTTP listener (once per connection, more often while a head arrives
// in pieces). Prints CPU ns per parse (median of rounds) for whole heads, and
// the total CPU time for the worst case the parser allows: a 16 KiB head
// arriving one byte at a time, parsed again at every byte.
import { parseRequestHead } from '../lib/http/request-head.js';

const ROUNDS = 9;
const PARSES_PER_ROUND = 200_000;

const heads: Array<{ name: string; head: Buffer }> = [
  { name: 'curl GET', head: Buffer.from('GET /index.html HTTP/1.1\r\nHost: app.example.com\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n') },
  {
    name: 'browser GET (11 fields)',
    head: Buffer.from(
      [
        'GET /assets/app.3f9a1c.js?v=2 HTTP/1.1',
        'Host: www.example.com',
        'Connection: keep-alive',
        'User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
        'Accept: */*',
        'Accept-Encoding: gzip, deflate',
        'Accept-Language: en-GB,en;q=0.9',
        'Cache-Control: no-cache',
        'Pragma: no-cache',
        'Referer: http://www.example.com/',
        'Sec-Fetch-Dest: script',
        'Cookie: session=6b1f0c2e9d4a4f0e8b7d3c2a1f0e9d8c; theme=dark',
        '',
        '',
      ].join('\r\n'),
    ),
  },
];

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** CPU time of `work`, in nanoseconds. */
function cpuNs(work: () => void): number {
  const start = process.cpuUsage();
  work();
  const used = process.cpuUsage(start);
  return (used.user + used.system) * 1e3;
}

let checksum = 0;
const parseMany = (head: Buffer, count: number): void => {
  for (let index = 0; index < count; index++) {
    const result = parseRequestHead(head);
    if (result.status !== 'complete') throw new Error(`expected a complete head, got ${JSON.stringify(result)}`);
    checksum += result.head.host.length;
  }
};

for (const { name, head } of heads) {
  parseMany(head, PARSES_PER_ROUND);
  const rounds = Array.from({ length: ROUNDS }, () => cpuNs(() => parseMany(head, PARSES_PER_ROUND)) / PARSES_PER_ROUND);
  console.log(`${name.padEnd(24)} ${String(head.length).padStart(5)} bytes  ${median(rounds).toFixed(0).padStart(6)} CPU ns/parse`);
}

const filler = Buffer.alloc(16 * 1024 - 60, 'a');
const slow = Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nHost: app.example.com\r\nX-Filler: '), filler]).subarray(0, 16 * 1024 - 1);
const trickled = median(
  Array.from({ length: ROUNDS }, () =>
    cpuNs(() => {
      for (let length = 1; length <= slow.length; length++) checksum += parseRequestHead(slow.subarray(0, length)).status.length;
    }),
  ),
);
console.log(`16 KiB head, one byte at a time: ${(trickled / 1e6).toFixed(1)} CPU ms in all (${slow.length} parses)`);
console.log(`node ${process.version}, median of ${ROUNDS} rounds (checksum ${checksum})`);
