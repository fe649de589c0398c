/* set_layout.h - the names every program agrees on inside a backup set's
 * folder: the manifest's file name and format number.  The supervisor
 * writes the manifest (src/supervisor/manifest.c); retention, prune-sets,
 * list, verify and restore read it.
 */
#ifndef MAB_SET_LAYOUT_H
#define MAB_SET_LAYOUT_H

#define MANIFEST_FORMAT 2
#define MANIFEST_NAME "manifest.json"

#endif
