// tus-js-client under Node: one upload described by a JSON argument, its outcome as JSON on
// stdout. Options: endpoint, file, metadata, chunkSize, parallelUploads, uploadUrl (resume),
// deferLength, headers, stopAfter (bytes: abort, without terminating, once that many are
// sent), terminate (abort and terminate once stopAfter is reached).
const fs = require("fs");
const tus = require("tus-js-client");

const options = JSON.parse(process.argv[2]);
const data = fs.readFileSync(options.file);
let input = data;
if (options.deferLength) {
  // A stream whose size is unknown up front: the length is declared once it ends.
  const pieces = [];
  for (let start = 0; start < data.length; start += 100000) {
    pieces.push(data.subarray(start, start + 100000));
  }
  input = require("stream").Readable.from(pieces);
}

const upload = new tus.Upload(input, {
  endpoint: options.endpoint,
  uploadUrl: options.uploadUrl || null,
  metadata: options.metadata || {},
  metadataForPartialUploads: options.metadata || {},
  chunkSize: options.chunkSize || Infinity,
  parallelUploads: options.parallelUploads || 1,
  uploadLengthDeferred: !!options.deferLength,
  headers: options.headers || {},
  retryDelays: [100, 500, 1000],
  storeFingerprintForResuming: false,
  onProgress(sent) {
    if (options.stopAfter && sent >= options.stopAfter && !this.stopped) {
      this.stopped = true;
      upload.abort(!!options.terminate).then(
        () => finish({ stopped: true, url: upload.url, sent }),
        (error) => finish({ error: String(error) }),
      );
    }
  },
  onSuccess() {
    finish({ url: upload.url });
  },
  onError(error) {
    finish({ error: String(error) });
  },
});

let done = false;
function finish(result) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify(result) + "\n");
  process.exit(result.error ? 1 : 0);
}

upload.start();
