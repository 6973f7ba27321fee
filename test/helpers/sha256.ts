import { createHash, createHmac } from 'node:crypto';

type SourceData = string | ArrayBuffer | ArrayBufferView;

const bytes = (d: SourceData) =>
  typeof d === 'string'
    ? d
    : d instanceof ArrayBuffer
      ? Buffer.from(d)
      : Buffer.from(d.buffer, d.byteOffset, d.byteLength);

/**
 * SHA-256 / HMAC-SHA256 for SigV4 signature checks in tests. Kept apart from the client's own
 * adapter on purpose: a verifier should not share code with what it verifies.
 */
export class Sha256 {
  private readonly h;
  constructor(secret?: SourceData) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: SourceData): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.h.digest());
  }
}
