/* import_status.h - what import-collection reports on its status fd
 * (child_status.h framing), and its own error classes.
 *
 *   target exists=0|1 documents=N     the target before anything is written
 *                                     (--dry-run stops here)
 *   progress documents=N inserted=N gzip_bytes=N bson_bytes=N
 *   result ok documents=N inserted=N failed=0 uncertain=0 indexes=N
 *             gzip_bytes=N bson_bytes=N sha256=HEX md5=B64 [dropped=1]
 *   result error class=C documents=N inserted=N failed=N uncertain=N
 *             indexes=N gzip_bytes=N bson_bytes=N [dropped=1] message=...
 *
 * documents: read from the stream; inserted: acknowledged by the server;
 * failed: refused by it (write errors); uncertain: sent in a batch whose
 * answer never came (connection lost), so the server may or may not hold
 * them; indexes: created.  Those four are exactly what was written.
 */
#ifndef MAB_IMPORT_STATUS_H
#define MAB_IMPORT_STATUS_H

#define IMPORT_CLASS_REFUSED "refused"   /* target not empty and no --drop */
#define IMPORT_CLASS_DATA    "data"      /* the stream is corrupt or truncated */
#define IMPORT_CLASS_WRITE   "write"     /* the server refused documents */
#define IMPORT_CLASS_INDEX   "index"     /* createIndexes failed */
#define IMPORT_CLASS_META    "metadata"  /* the metadata given is unusable */

/* Batches: at most this many documents or bytes per insert (whichever
 * comes first; a larger single document goes alone). */
#define IMPORT_BATCH_DOCS 1000
#define IMPORT_BATCH_BYTES (16u << 20)

#endif
