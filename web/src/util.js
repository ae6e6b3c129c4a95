// Small helpers shared by the modules of the web client.

const ID_CHARS = '0123456789abcdefghijklmnopqrstuvwxyz';

/** A message or upload id of the protocol's alphabet ([A-Za-z0-9_-], 1..64). */
export function newId(prefix = 'w') {
  const rnd = new Uint8Array(10);
  crypto.getRandomValues(rnd);
  let s = '';
  for (const b of rnd) s += ID_CHARS[b % 36];
  return prefix + Date.now().toString(36) + s;
}

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, '0')).join('');
}

export async function sha256Hex(bytes) {
  return toHex(await crypto.subtle.digest('SHA-256', bytes));
}

export function toBase64(bytes) {
  let s = '';
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + chunk));
  }
  return btoa(s);
}

export function fromBase64(text) {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** "14:03" today, "3 Dec 14:03" before. */
export function formatTime(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === new Date().toDateString()) return hm;
  return d.toLocaleDateString([], { day: 'numeric', month: 'short' }) + ' ' + hm;
}

export function formatSize(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return (n / 1024).toFixed(1) + ' KiB';
  return (n / 1024 / 1024).toFixed(1) + ' MiB';
}
