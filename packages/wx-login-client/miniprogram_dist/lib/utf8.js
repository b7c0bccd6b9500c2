// UTF-8 encoder and decoder for the wasm glue (wasm/client.js), shaped like the
// parts of TextEncoder/TextDecoder that wasm-bindgen uses. The mini-program runtime lacks those
// two on some platforms (iOS in particular), so the glue always uses these: one code path on
// every phone, and the one the tests exercise. Strings crossing the boundary are short JSON.
'use strict';

/** Writes `str` as UTF-8 into `bytes`, stopping before a character that does not fit. */
function encodeInto(str, bytes) {
  let read = 0;
  let written = 0;
  while (read < str.length) {
    let code = str.charCodeAt(read);
    let units = 1;
    if (code >= 0xd800 && code <= 0xdbff && read + 1 < str.length) {
      const low = str.charCodeAt(read + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        units = 2;
      }
    }
    // A lone surrogate cannot be encoded; like TextEncoder, send U+FFFD instead.
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
    const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    if (written + size > bytes.length) break;
    if (size === 1) {
      bytes[written] = code;
    } else if (size === 2) {
      bytes[written] = 0xc0 | (code >> 6);
      bytes[written + 1] = 0x80 | (code & 0x3f);
    } else if (size === 3) {
      bytes[written] = 0xe0 | (code >> 12);
      bytes[written + 1] = 0x80 | ((code >> 6) & 0x3f);
      bytes[written + 2] = 0x80 | (code & 0x3f);
    } else {
      bytes[written] = 0xf0 | (code >> 18);
      bytes[written + 1] = 0x80 | ((code >> 12) & 0x3f);
      bytes[written + 2] = 0x80 | ((code >> 6) & 0x3f);
      bytes[written + 3] = 0x80 | (code & 0x3f);
    }
    read += units;
    written += size;
  }
  return { read, written };
}

class Utf8Encoder {
  get encoding() {
    return 'utf-8';
  }

  encode(str = '') {
    // Three bytes per UTF-16 unit is the worst case (a surrogate pair takes two units, four bytes).
    const buffer = new Uint8Array(str.length * 3);
    return buffer.slice(0, encodeInto(str, buffer).written);
  }

  encodeInto(str, bytes) {
    return encodeInto(str, bytes);
  }
}

/** Decodes UTF-8; malformed sequences become U+FFFD, as TextDecoder does without `fatal`. */
class Utf8Decoder {
  get encoding() {
    return 'utf-8';
  }

  decode(bytes) {
    if (bytes === undefined) return '';
    const units = [];
    let out = '';
    let i = 0;
    while (i < bytes.length) {
      const lead = bytes[i];
      let code = 0xfffd;
      let size = 1;
      if (lead < 0x80) {
        code = lead;
      } else if (lead >= 0xc2 && lead <= 0xf4) {
        size = lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
        // The second byte's range excludes overlong forms, surrogates and code points > U+10FFFF.
        const min = lead === 0xe0 ? 0xa0 : lead === 0xf0 ? 0x90 : 0x80;
        const max = lead === 0xed ? 0x9f : lead === 0xf4 ? 0x8f : 0xbf;
        let value = lead & (size === 2 ? 0x1f : size === 3 ? 0x0f : 0x07);
        let taken = 1;
        while (taken < size) {
          const next = bytes[i + taken];
          const low = taken === 1 ? min : 0x80;
          const high = taken === 1 ? max : 0xbf;
          if (next === undefined || next < low || next > high) break;
          value = (value << 6) | (next & 0x3f);
          taken += 1;
        }
        if (taken === size) {
          code = value;
        } else {
          size = taken; // a truncated sequence is one U+FFFD; resume at the offending byte
        }
      }
      if (code >= 0x10000) {
        code -= 0x10000;
        units.push(0xd800 + (code >> 10), 0xdc00 + (code & 0x3ff));
      } else {
        units.push(code);
      }
      i += size;
      // Flush in chunks: fromCharCode takes its units as arguments, and those are limited.
      if (units.length > 4096) out += String.fromCharCode.apply(null, units.splice(0));
    }
    return out + String.fromCharCode.apply(null, units);
  }
}

module.exports = { Utf8Encoder, Utf8Decoder };
