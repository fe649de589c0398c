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

/* A [mongodb.NAME] section, as read. */
struct db_section {
	char *database;
	struct name_list collections;
	bool has_collections;
	int line;                       /* of its [mongodb.NAME] */
	char *raw;                      /* collections as written */
	int raw_line;
};

/* What config_resolve_scopes() needs besides the keys in cfg. */
struct scope_input {
	const struct db_section *sections;
	size_t n_sections;
	struct name_list collections;   /* [mongodb] collections */
	int database_line, databases_line, collections_line;
};

/* mab_config_scope.c */
int config_resolve_scopes(struct mab_config *cfg, const struct scope_input *in,
			  void (*report)(void *ctx, int line, const char *message), void *ctx);
int config_parse_bool(const char *text, bool *out);
char *config_trim_copy(const char *start, size_t len);

#endif
