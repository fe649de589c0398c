/* mab_config_values.h - what mab_config.c takes from mab_config_values.c.
 * Programs include mab_config.h only.
 */
#ifndef MAB_MAB_CONFIG_VALUES_H
#define MAB_MAB_CONFIG_VALUES_H

#include <stdbool.h>
#include <stddef.h>

#include "mab_config.h"

/* mab_config_values.c */
const char *config_collection_name_problem(const char *name);
void config_free_collections(struct mab_config *cfg);
int config_parse_bool(const char *text, bool *out);
char *config_trim_copy(const char *start, size_t len);

#endif
