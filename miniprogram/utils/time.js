// How the pages show a time the server gives: in UTC, so that every phone shows the same text
// whatever its time zone, and the tests can check it.

/** A time in Unix seconds as "2025-01-31 12:34 UTC". */
function utc(seconds) {
  const iso = new Date(seconds * 1000).toISOString();
  return iso.slice(0, 10) + ' ' + iso.slice(11, 16) + ' UTC';
}

module.exports = { utc: utc };
