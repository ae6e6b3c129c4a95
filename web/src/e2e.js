// End-to-end encrypted messages (docs/e2e.md), opened in the browser: this
// browser is a device with its own X25519 key (WebCrypto), published on
// out/key; a sealed message opens with X25519 + HKDF-SHA256 (WebCrypto)
// and ChaCha20-Poly1305 (@noble/ciphers: WebCrypto has no ChaCha).
import { chacha20poly1305 } from '@noble/ciphers/chacha';
import { fromBase64, toBase64 } from './util.js';

const AD_LABEL = new TextEncoder().encode('mqim-e2e-v1\0');
const WRAP_LABEL = new TextEncoder().encode('mqim-e2e-v1 wrap');
const ZERO_NONCE = new Uint8Array(12);
const MEMBERS = ['v', 'sd', 'spk', 'epk', 'r', 'ct'];

/** Why a message does not open: the status names of docs/e2e.md. */
export class E2EError extends Error {
  constructor(code) {
    super(code);
    this.code = code;
  }
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function lp(text) {
  const b = new TextEncoder().encode(text || '');
  if (b.length > 255) throw new E2EError('e2e_malformed');
  return concat(Uint8Array.of(b.length), b);
}

// Standard base64 of exactly n bytes, padded, as the format requires.
function exact(v, n) {
  if (typeof v !== 'string' || v.length !== 4 * Math.ceil(n / 3) || !/^[A-Za-z0-9+/]*={0,2}$/.test(v)) {
    throw new E2EError('e2e_malformed');
  }
  const b = fromBase64(v);
  if (b.length !== n) throw new E2EError('e2e_malformed');
  return b;
}

async function additionalData(env, enc, spk, epk, pairs) {
  const parts = [AD_LABEL, lp(env.from), lp(enc.sd), spk, epk, lp(env.to), lp(env.group), lp(env.id),
    lp(env.type || 'text'), Uint8Array.of(pairs.length)];
  for (const [u, d] of pairs) parts.push(lp(u), lp(d));
  return new Uint8Array(await crypto.subtle.digest('SHA-256', concat(...parts)));
}

async function x25519(privateKey, publicRaw) {
  const pub = await crypto.subtle.importKey('raw', publicRaw, { name: 'X25519' }, false, []);
  // WebCrypto refuses an all-zero shared secret itself (a small-order key)
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: pub }, privateKey, 256));
}

async function hkdf(ikm, salt, info) {
  const key = await crypto.subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
  return new Uint8Array(await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt, info }, key, 256));
}

/**
 * This browser's device key, kept in localStorage (as a JWK: the page is
 * the only script of its origin), made on first use.
 */
export class DeviceKey {
  static async load(storage, user, device) {
    const name = `mqim.e2e.${user}.${device}`;
    const saved = storage.getItem(name);
    let pair;
    if (saved) {
      const jwk = JSON.parse(saved);
      const priv = await crypto.subtle.importKey('jwk', jwk, { name: 'X25519' }, true, ['deriveBits']);
      const pubJwk = { kty: jwk.kty, crv: jwk.crv, x: jwk.x };
      const pub = await crypto.subtle.importKey('jwk', pubJwk, { name: 'X25519' }, true, []);
      pair = { privateKey: priv, publicKey: pub };
    } else {
      pair = await crypto.subtle.generateKey({ name: 'X25519' }, true, ['deriveBits']);
      storage.setItem(name, JSON.stringify(await crypto.subtle.exportKey('jwk', pair.privateKey)));
    }
    const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
    return new DeviceKey(storage, user, device, pair.privateKey, raw);
  }

  constructor(storage, user, device, privateKey, publicRaw) {
    Object.assign(this, { storage, user, device, privateKey, publicRaw });
    this.opened = new Set(); // (from, sd, id) opened: replays are refused
  }

  /** The out/key payload. */
  payload() {
    return JSON.stringify({ device: this.device, x25519: toBase64(this.publicRaw) });
  }

  /**
   * Opens an envelope with `enc` (docs/e2e.md, "Opening"): resolves with
   * {text, device, keyChanged}, or rejects with an E2EError.
   */
  async open(env) {
    const enc = env.enc;
    if (!enc || typeof enc !== 'object' || Object.keys(enc).length !== MEMBERS.length ||
        !MEMBERS.every((m) => m in enc) || enc.v !== 1 || typeof enc.sd !== 'string' ||
        !Array.isArray(enc.r) || enc.r.length < 1 || enc.r.length > 64 || typeof enc.ct !== 'string') {
      throw new E2EError('e2e_malformed');
    }
    const spk = exact(enc.spk, 32);
    const epk = exact(enc.epk, 32);
    let mine = null;
    const pairs = [];
    for (const e of enc.r) {
      if (!e || typeof e !== 'object' || Object.keys(e).length !== 3 || typeof e.u !== 'string' ||
          typeof e.d !== 'string') {
        throw new E2EError('e2e_malformed');
      }
      const k = exact(e.k, 48);
      pairs.push([e.u, e.d]);
      if (e.u === this.user && e.d === this.device) {
        if (mine) throw new E2EError('e2e_malformed');
        mine = k;
      }
    }
    if (!mine) throw new E2EError('e2e_not_for_device');
    const ct = fromBase64(enc.ct);
    const h = await additionalData(env, enc, spk, epk, pairs);
    let plain;
    try {
      const es = await x25519(this.privateKey, epk);
      const ss = await x25519(this.privateKey, spk);
      const kek = await hkdf(concat(es, ss), h, concat(WRAP_LABEL, this.publicRaw));
      const ck = chacha20poly1305(kek, ZERO_NONCE, h).decrypt(mine);
      plain = chacha20poly1305(ck, ZERO_NONCE, h).decrypt(ct);
    } catch {
      throw new E2EError('e2e_auth_failed');
    }
    let text;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(plain);
    } catch {
      throw new E2EError('utf8_invalid');
    }
    const replayKey = `${env.from}\n${enc.sd}\n${env.id}`;
    if (this.opened.has(replayKey)) throw new E2EError('e2e_replay');
    this.opened.add(replayKey);
    return { text, device: enc.sd, keyChanged: this.trust(env.from, enc.sd, enc.spk) };
  }

  // Trust on first use (docs/e2e.md): the first key of (user, device) is
  // kept; a different one later is trusted too, with a warning shown.
  trust(user, device, spkB64) {
    const name = `mqim.trust.${this.user}.${this.device}`;
    const known = JSON.parse(this.storage.getItem(name) || '{}');
    const who = `${user}/${device}`;
    const changed = known[who] !== undefined && known[who] !== spkB64;
    if (known[who] !== spkB64) {
      known[who] = spkB64;
      this.storage.setItem(name, JSON.stringify(known));
    }
    return changed;
  }
}
