/* backup_set_int.h - what the files of backup sets share among
 * themselves: backup_set.c (the listing, small blobs, times, order, names
 * resolved) is used by set_manifest.c (a manifest parsed and loaded);
 * set_names.c (the names a manifest may hold) is used by both.  Callers
 * include backup_set.h only.
 */
#ifndef MAB_BACKUP_SET_INT_H
#define MAB_BACKUP_SET_INT_H

#include "backup_set.h"

/* backup_set.c */
void coll_free(struct set_coll *c);
void set_clear_manifest(struct backup_set *s);

/* set_names.c */
const char *set_show_name(const char *name, char *buf, size_t len);

#endif
