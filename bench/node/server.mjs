// Node peer for the tinysse benchmark: the plain `http` module, no dependencies.
//
// GET /events subscribes to every event; POST /events publishes its raw body as one event
// ("data: <body>\n\n") to every subscriber with res.write and answers 200 at once.
// Port: first argument, else $PORT, else 8080. Listens on 127.0.0.1 only.
import http from 'node:http';

const port = Number(process.argv[2] || process.env.PORT || 8080);
const subscribers = new Set();

// One SSE event: one data line per line of the body.
function frame(body) {
  return body.replace(/\r\n?/g, '\n').split('\n').map((l) => `data: ${l}\n`).join('') + '\n';
}

const server = http.createServer((req, res) => {
  const path = req.url.split('?', 1)[0];
  if (path !== '/events') {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(200, {
      'Content-Type': 'text/event-stream',
      'Cache-Control': 'no-cache',
      'X-Accel-Buffering': 'no',
    });
    res.flushHeaders();
    subscribers.add(res);
    const drop = () => subscribers.delete(res);
    res.on('close', drop);
    res.on('error', drop);
  } else if (req.method === 'POST') {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const event = frame(Buffer.concat(chunks).toString('utf8'));
      for (const sub of subscribers) sub.write(event);
      res.writeHead(200, { 'Content-Length': 0 }).end();
    });
  } else {
    res.writeHead(405, { Allow: 'GET, POST', 'Content-Type': 'text/plain' }).end('method not allowed\n');
  }
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;
server.requestTimeout = 0; // a stream is one long response
server.listen(port, '127.0.0.1', () => console.log(`node peer listening on 127.0.0.1:${port}`));
