import { ZSTDDecoder } from 'zstddec';
import { CODEC_ZSTD, type PageDecompressor } from './parquetColumnReader.js';

/*
 * Decompresses Parquet pages for the read side's fast path (parquetColumnReader.ts). ZSTD goes
 * through zstddec (the reference zstd decoder built to WebAssembly for speed): on change segments
 * it expands ~350 MB/s on one core here, where parquet-wasm's own ZSTD (built for size) runs at
 * ~90 MB/s and pure-JS fzstd at ~100 MB/s (BENCHMARKS.md, bench:changes). Other codecs are left to
 * the parquet-wasm path.
 */

const zstd = new ZSTDDecoder();
// The wasm module compiles asynchronously once, when this module loads; decoding is synchronous.
await zstd.init();

export const pageDecompressor: PageDecompressor = {
  supports: (codec) => codec === CODEC_ZSTD,
  decompress(codec, input, uncompressedSize) {
    if (codec !== CODEC_ZSTD) throw new Error(`codec ${codec} is not decompressed here`);
    // A size of 0 would make the decoder guess it from the frame; the page header always says it.
    if (uncompressedSize === 0) return new Uint8Array(0);
    return zstd.decode(input, uncompressedSize);
  },
};
