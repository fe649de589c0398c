/* manifest.h - the backup set's manifest.json.
 *
 * Written first with "complete": false, rewritten last; only a set whose
 * manifest says complete counts as a good backup.  Encoded with libbson's
 * relaxed Extended JSON (plain JSON numbers and strings).
 */
#ifndef MAB_MANIFEST_H
#define MAB_MANIFEST_H

#include <stdbool.h>

#include "set_layout.h"

struct backup_run;


/* A malloc'd JSON text, or NULL when out of memory. */
char *manifest_encode(const struct backup_run *run, bool final);

#endif
