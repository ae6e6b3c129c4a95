// Files (docs/protocol.md, "Files"): upload in chunks with file_begin /
// file_put, download with file_get, both checked against SHA-256 computed
// by WebCrypto.
import { fromBase64, sha256Hex, toBase64 } from './util.js';

const CHUNK = 6144; // bytes: its base64 (8 KiB) fits the 16 KiB publish with room
const RETRIES = 3; // answers are not stored by the gateway: a lost one is asked again

async function ask(session, body) {
  let last;
  for (let i = 0; i < RETRIES; i++) {
    try {
      return await session.request(body, 'file');
    } catch (e) {
      if (e.code) throw e; // the gateway said no: asking again will not help
      last = e;
    }
  }
  throw last;
}

/**
 * Uploads a File; onProgress(bytes, size). Resolves with the gateway's file
 * id. The upload id comes from the content, so uploading the same file
 * again resumes (as `mqim send-file` does).
 */
export async function uploadFile(session, file, onProgress) {
  const data = new Uint8Array(await file.arrayBuffer());
  const sha256 = await sha256Hex(data);
  const upload = 'w' + sha256.slice(0, 40) + data.length.toString(36);
  let r = await ask(session, {
    op: 'file_begin', upload, name: file.name || 'file', size: data.length, sha256,
    mime: file.type || 'application/octet-stream', chunk: CHUNK,
  });
  const id = r.file;
  const chunk = r.chunk;
  let have = r.have;
  onProgress(have, data.length);
  while (!r.complete) {
    r = await ask(session, {
      op: 'file_put', file: id, offset: have, data: toBase64(data.subarray(have, have + chunk)),
    });
    have = r.have;
    onProgress(have, data.length);
  }
  return { id, sha256, size: data.length };
}

/**
 * Downloads a file described in a message (`file`: id, size, sha256, ...);
 * onProgress(bytes, size). Resolves with {bytes, sha256, ok}: ok when the
 * SHA-256 of what came matches the description.
 */
export async function downloadFile(session, file, onProgress) {
  const out = new Uint8Array(file.size);
  let offset = 0;
  onProgress(0, file.size);
  while (offset < file.size) {
    const r = await ask(session, { op: 'file_get', file: file.id, offset, len: CHUNK });
    const part = fromBase64(r.data);
    if (part.length === 0 || offset + part.length > file.size) throw new Error('the gateway sent a wrong chunk');
    out.set(part, offset);
    offset += part.length;
    onProgress(offset, file.size);
  }
  const sha256 = await sha256Hex(out);
  return { bytes: out, sha256, ok: sha256 === file.sha256 };
}
