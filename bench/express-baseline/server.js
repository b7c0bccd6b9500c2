// The original article's login server, reimplemented for `cargo xtask bench`: the figure the
// Rust server is compared with. Express, one process, sessions in a plain object, a token that
// is the login's timestamp, exactly as the seed kept them.
//
// Left out on purpose: the seed's code2Session call in POST /login (the bench measures this
// server's /checklogin only, so its login just hands out a token) and any persistence (the seed
// had none). GET /checklogin takes the token as `?token=` (the seed's form) or as a Bearer
// header (the form the bench sends to both servers, so both parse the same request).
//
// Listens on 127.0.0.1, port $PORT (0, the default, lets the OS choose), and logs
// `listening addr=127.0.0.1:<port>` as the Rust server does, so the bench finds it the same way.
'use strict';

const express = require('express');

const app = express();
app.use(express.json());

const sessions = {};

app.post('/login', (req, res) => {
  const code = req.body && req.body.code;
  if (!code) {
    res.status(400).json({ error: 'code required' });
    return;
  }
  // The seed's token: the time of the login. Two logins in one millisecond would share one;
  // a counter suffix keeps the reimplementation from inheriting that bug into the bench.
  let token = String(Date.now());
  while (sessions[token]) token += '_';
  sessions[token] = { code, created: Date.now() };
  res.json({ token });
});

app.get('/checklogin', (req, res) => {
  const header = req.get('authorization') || '';
  const token = header.startsWith('Bearer ') ? header.slice(7) : req.query.token;
  res.json({ is_login: Boolean(token && Object.prototype.hasOwnProperty.call(sessions, token)) });
});

const server = app.listen(Number(process.env.PORT || 0), '127.0.0.1', () => {
  console.error(`listening addr=127.0.0.1:${server.address().port}`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
