/**
 * One session on stdin/stdout: inetd, xinetd, tcpserver, systemd socket activation (Accept=yes).
 * The client's address comes from tcpserver's variables when set, else from the socket on fd 0,
 * else (a pipe, someone typing) it is taken as local.
 */
import { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import type { Endpoints } from '../session/connection.ts';
import { StreamConn } from './stream-conn.ts';
import { plainIp } from './tcp.ts';

/** tcpserver's environment (TCPREMOTEIP, TCPREMOTEPORT, TCPLOCALIP, TCPLOCALPORT, TCPREMOTEHOST, TCPREMOTEINFO). */
export type TcpserverEnv = Readonly<Record<string, string | undefined>>;

export function stdioEndpoints(env: TcpserverEnv, input: Readable): Endpoints {
  const socket = input instanceof Socket ? input : undefined;
  const port = (value: string | undefined, fallback: number | undefined): number => {
    const n = Number(value);
    return value !== undefined && Number.isInteger(n) ? n : (fallback ?? 0);
  };
  const remoteIp = env['TCPREMOTEIP'] ?? (socket?.remoteAddress ? plainIp(socket.remoteAddress) : '127.0.0.1');
  const localIp = env['TCPLOCALIP'] ?? (socket?.localAddress ? plainIp(socket.localAddress) : '127.0.0.1');
  return {
    remoteIp,
    remotePort: port(env['TCPREMOTEPORT'], socket?.remotePort),
    localIp,
    localPort: port(env['TCPLOCALPORT'], socket?.localPort),
    ...(env['TCPREMOTEHOST'] ? { remoteHost: env['TCPREMOTEHOST'] } : {}),
    ...(env['TCPREMOTEINFO'] ? { remoteInfo: env['TCPREMOTEINFO'] } : {}),
  };
}

export function stdioConn(env: TcpserverEnv, input: Readable, output: Writable): StreamConn {
  return new StreamConn(stdioEndpoints(env, input), input, output);
}
