#!/usr/bin/env node
// Idle SMTP connections for `npm run bench` (bench/run.mjs spawns this in a process of its own,
// with a raised `ulimit -n`, so the connections' memory and file descriptors are not the harness's).
//
//   node bench/idle-client.mjs PORT COUNT [PARALLEL=200] [TIMEOUT_S=120]
//
// Opens COUNT connections to 127.0.0.1:PORT, at most PARALLEL of them waiting for their greeting at
// a time, and waits until every one has its first reply line. Then prints one line on stdout,
//   READY greeted=N refused=N failed=N ms=N
// (refused: the first reply was not 220; failed: a socket error or close before any reply) and holds
// every connection open, saying nothing, until its stdin closes or it gets SIGTERM; then it closes
// them all and exits. Gives up with `TIMEOUT ...` after TIMEOUT_S seconds of opening.
import { connect } from 'node:net';

const [port, count, parallel, timeoutS] = [2, 3, 4, 5].map((i, k) => Number(process.argv[i] ?? [0, 0, 200, 120][k]));
if (!(port > 0) || !(count > 0)) {
  process.stderr.write('usage: idle-client.mjs PORT COUNT [PARALLEL] [TIMEOUT_S]\n');
  process.exit(2);
}

const sockets = [];
let started = 0;
let greeted = 0;
let refused = 0;
let failed = 0;
let reported = false;
const t0 = Date.now();

function openOne() {
  if (started >= count) return;
  started++;
  const socket = connect({ host: '127.0.0.1', port });
  sockets.push(socket);
  let answered = false;
  const settle = (outcome) => {
    if (answered) return;
    answered = true;
    if (outcome === 'greeted') greeted++;
    else if (outcome === 'refused') refused++;
    else failed++;
    openOne();
    check();
  };
  socket.once('data', (chunk) => settle(chunk[0] === 0x32 && chunk[1] === 0x32 && chunk[2] === 0x30 ? 'greeted' : 'refused'));
  socket.on('error', () => settle('failed'));
  socket.on('close', () => settle('failed'));
}

function finish(code) {
  for (const s of sockets) s.destroy();
  setTimeout(() => process.exit(code), 100);
}

function check() {
  if (reported || greeted + refused + failed < count) return;
  reported = true;
  clearTimeout(giveUp);
  process.stdout.write(`READY greeted=${greeted} refused=${refused} failed=${failed} ms=${Date.now() - t0}\n`);
}

const giveUp = setTimeout(() => {
  process.stdout.write(`TIMEOUT greeted=${greeted} refused=${refused} failed=${failed} started=${started}\n`);
  reported = true;
  finish(1);
}, timeoutS * 1000);

process.stdin.on('data', () => undefined);
process.stdin.on('end', () => finish(0));
process.on('SIGTERM', () => finish(0));
for (let i = 0; i < Math.min(parallel, count); i++) openOne();
