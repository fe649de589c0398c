/* ctl_restore_mongo.h - restore's MongoDB target (ctl_restore_mongo.c):
 * download-blob | import-collection per collection.  Called by
 * ctl_restore.c.
 */
#ifndef MAB_CTL_RESTORE_MONGO_H
#define MAB_CTL_RESTORE_MONGO_H

#include <stddef.h>

#include "ctl_restore_item.h"

/* Mongo target.  preflight: import-collection --dry-run per collection
 * (connects, looks at each target collection, writes nothing).  run: the
 * restore itself.  Both fill the items and return the number that failed. */
size_t restore_mongo_preflight(struct restore *rs);
size_t restore_mongo_run(struct restore *rs);

#endif
