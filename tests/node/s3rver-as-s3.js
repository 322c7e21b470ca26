// s3rver-as-s3.js — preloaded into s3rver (`node -r`) by the test harness so
// that it keeps two promises of S3 that s3rver 3.7.1 does not, and that the
// store contract suite checks:
//
//  1. Listings in byte-wise key order. s3rver walks its directory tree, so
//     "p/a/b" comes before "p/a-c" although '-' < '/'; marker pagination then
//     skips or repeats keys. Here a listing collects every match and sorts.
//  2. Atomic puts. s3rver writes the object file in place (and answers before
//     the write is flushed), so a concurrent or immediate GET can see a torn
//     body. Here the body goes to a temporary file that is renamed into place
//     once complete, and a GET opens the body first (pinning one complete
//     version) and serves it only with metadata of the same length, reading
//     both again otherwise.
//
// Both are test-side fixes to the test server; sluice's S3 backend makes no
// allowance for either.
'use strict';
const crypto = require('crypto');
const fs = require('fs-extra');
const path = require('path');
const { pipeline } = require('stream/promises');
const { Transform } = require('stream');

const FilesystemStore = require('s3rver/lib/stores/filesystem');
const S3Object = require('s3rver/lib/models/object');

const listObjects = FilesystemStore.prototype.listObjects;
FilesystemStore.prototype.listObjects = async function (bucket, options) {
  const maxKeys = options.maxKeys === undefined ? Infinity : options.maxKeys;
  const all = await listObjects.call(this, bucket, { ...options, maxKeys: Infinity });
  all.objects.sort((a, b) => Buffer.compare(Buffer.from(a.key), Buffer.from(b.key)));
  const isTruncated = all.objects.length > maxKeys;
  return { ...all, objects: all.objects.slice(0, maxKeys), isTruncated };
};

let tmpSeq = 0;
FilesystemStore.prototype.putObject = async function (object) {
  const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
  const dir = path.dirname(objectPath);
  await fs.mkdirp(dir);
  const tmp = path.join(dir, `.s3rver-put-${process.pid}-${++tmpSeq}`);
  const md5 = crypto.createHash('md5');
  let size = 0;
  const count = new Transform({
    transform(chunk, encoding, done) {
      md5.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  try {
    if (Buffer.isBuffer(object.content)) {
      md5.update(object.content);
      size = object.content.length;
      await fs.writeFile(tmp, object.content);
    } else {
      await pipeline(object.content, count, fs.createWriteStream(tmp));
    }
    const digest = md5.digest('hex');
    // Metadata first: a reader that sees the new body also sees its length.
    await this.putMetadata(object.bucket, object.key, object.metadata, digest);
    await fs.rename(tmp, objectPath);
    return { size, md5: digest };
  } catch (err) {
    await fs.remove(tmp).catch(() => {});
    throw err;
  }
};

FilesystemStore.prototype.getObject = async function (bucket, key, options) {
  const objectPath = this.getResourcePath(bucket, key, 'object');
  for (let attempt = 0; ; attempt++) {
    let fh;
    try {
      fh = await fs.promises.open(objectPath, 'r');
    } catch (err) {
      if (err.code === 'ENOENT') return null;
      throw err;
    }
    let metadata, size;
    try {
      size = (await fh.stat()).size;
      metadata = await this.getMetadata(bucket, key);
    } catch (err) {
      await fh.close();
      if (err.code === 'ENOENT') return null;
      if (attempt < 50) continue; // metadata caught half written
      throw err;
    }
    if (Number(metadata['content-length']) !== size && attempt < 50) {
      await fh.close(); // a put landed between the two reads
      await new Promise(resolve => setTimeout(resolve, 2));
      continue;
    }
    const lastByte = Math.max(0, size - 1);
    const ranged = options && (options.start !== undefined || options.end);
    const range = {
      start: (options && options.start) || 0,
      end: Math.min((options && options.end) || Infinity, lastByte),
    };
    let content = null;
    if (range.start < 0 || range.end < range.start) {
      await fh.close(); // not satisfiable
    } else {
      content = fh.createReadStream(range);
    }
    const object = new S3Object(bucket, key, content, metadata);
    if (ranged) object.range = range;
    return object;
  }
};
