#!/usr/bin/env node
// The Node floor for `npm run bench`: the least a Node.js SMTP receiver can do per session on this
// machine. One process, node:net, no plugins, no spool, no logging: it answers every command of
// smtp-source's dialogue, finds the end of DATA and forgets the message. Whatever a real daemon on
// Node costs above this line is its own; what this costs is Node's and the kernel's.
//
//   node bench/node-floor.mjs HOST:PORT
import { createServer } from 'node:net';

const [host, port] = (process.argv[2] ?? '127.0.0.1:2525').split(/:(?=\d+$)/);
const CRLF_DOT_CRLF = Buffer.from('\r\n.\r\n');

const REPLIES = {
  EHLO: '250-floor.localhost\r\n250-PIPELINING\r\n250 8BITMIME\r\n',
  HELO: '250 floor.localhost\r\n',
  MAIL: '250 ok\r\n',
  RCPT: '250 ok\r\n',
  RSET: '250 ok\r\n',
  NOOP: '250 ok\r\n',
  DATA: '354 go ahead\r\n',
  QUIT: '221 bye\r\n',
};

function serve(socket) {
  let inData = false;
  let pending = Buffer.alloc(0);
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    let buf = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    let out = '';
    let quit = false;
    while (buf.length) {
      if (inData) {
        // Keep the last four bytes: the terminator may straddle two reads.
        const end = buf.indexOf(CRLF_DOT_CRLF);
        if (end < 0) {
          buf = buf.subarray(Math.max(0, buf.length - 4));
          break;
        }
        buf = buf.subarray(end + CRLF_DOT_CRLF.length);
        inData = false;
        out += '250 queued\r\n';
        continue;
      }
      const eol = buf.indexOf(10);
      if (eol < 0) break;
      const verb = buf.toString('latin1', 0, Math.min(4, eol)).toUpperCase();
      buf = buf.subarray(eol + 1);
      out += REPLIES[verb] ?? '500 unrecognized\r\n';
      if (verb === 'DATA') {
        inData = true;
        // The body's first line may itself be ".": look for the terminator with the CRLF before it.
        buf = Buffer.concat([Buffer.from('\r\n'), buf]);
      }
      if (verb === 'QUIT') quit = true;
    }
    pending = buf.length ? Buffer.from(buf) : Buffer.alloc(0);
    if (quit) socket.end(out);
    else if (out) socket.write(out);
  });
  socket.write('220 floor.localhost ESMTP\r\n');
}

createServer(serve).listen({ host, port: Number(port), backlog: 1024 });
