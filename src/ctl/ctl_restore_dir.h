/* ctl_restore_dir.h - restore's directory target (ctl_restore_dir.c):
 * mongodump's layout under --to-dir.  Called by ctl_restore.c.
 */
#ifndef MAB_CTL_RESTORE_DIR_H
#define MAB_CTL_RESTORE_DIR_H

#include <stddef.h>

#include "ctl_restore_item.h"

/* Directory target: DIR/DB/COLL.bson + COLL.metadata.json.  check: that
 * nothing would be overwritten.  Return the number that failed. */
size_t restore_dir_check(struct restore *rs);
size_t restore_dir_run(struct restore *rs);

#endif
