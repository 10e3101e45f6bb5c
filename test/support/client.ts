import { connect } from 'node:net';
import { request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json(): unknown;
}

export interface ClientRequestOptions {
  method?: string;
  /** An object, or a flat `[name, value, name, value…]` list to send repeated headers verbatim. */
  headers?: OutgoingHttpHeaders | string[];
  body?: string | Buffer;
}

/** A plain HTTP request on a fresh connection, so every test sees exactly what it sent. */
export function send(
  url: string,
  { method = 'GET', headers = {}, body }: ClientRequestOptions = {},
): Promise<ClientResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: text,
          json: () => JSON.parse(text),
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Sends `text` verbatim on a raw socket and resolves with everything the server wrote back until
 * it closed the connection: for requests no HTTP client would send as written.
 */
export function sendRaw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let response = '';
    socket.on('data', (chunk: Buffer) => (response += chunk.toString('latin1')));
    socket.on('close', () => resolve(response));
    socket.on('error', reject);
    socket.write(text, 'latin1');
  });
}
