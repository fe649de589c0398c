/* mab_config_scope.c - what a run backs up: [mongodb] database or
 * databases, each database's collections ([mongodb] collections for the
 * one-database form, [mongodb.NAME] collections with databases), resolved
 * into one scope per named database; and mongodump's rules for which
 * databases and collections a whole-instance or whole-database backup
 * leaves out.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mab_config.h"
#include "mab_config_values.h"

void name_list_free(struct name_list *l)
{
	if (l->names != NULL)
		for (size_t i = 0; i < l->n; i++)
			free(l->names[i]);
	free(l->names);
	l->names = NULL;
	l->n = 0;
	l->all = false;
}

static const char *database_name_problem(const char *name)
{
	if (*name == '\0')
		return "empty database name";
	if (strlen(name) >= 64)
		return "database names are shorter than 64 bytes";
	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		if (*p < 0x20 || *p == 0x7f || strchr("/\\. \"$*<>:|?", *p) != NULL)
			return "database names cannot hold / \\ . space \" $ * < > : | ? "
			       "or control characters";
	return NULL;
}

bool config_database_name_ok(const char *name)
{
	return database_name_problem(name) == NULL;
}

/* "a, b, c" or "*".  0, or -1 with the reason in err. */
int config_parse_names(const char *value, bool databases, struct name_list *out,
		       char *err, size_t errlen)
{
	const char *what = databases ? "databases" : "collections";
	const char *p = value;
	size_t cap = 1;

	name_list_free(out);
	out->names = NULL;
	if (strcmp(value, "*") == 0) {
		out->all = true;
		out->names = calloc(1, sizeof(char *));
		if (out->names == NULL)
			goto oom;
		return 0;
	}
	for (const char *q = value; *q != '\0'; q++)
		cap += *q == ',';
	out->names = calloc(cap + 1, sizeof(char *));
	if (out->names == NULL)
		goto oom;
	for (;;) {
		size_t len = strcspn(p, ",");
		char *name = config_trim_copy(p, len);
		if (name == NULL)
			goto oom;
		const char *problem = databases ? database_name_problem(name)
						: config_collection_name_problem(name);
		if (problem == NULL && strcmp(name, "*") == 0)
			problem = "'*' stands alone, for all";
		if (problem != NULL) {
			snprintf(err, errlen, "%s: %s%s%s", what, problem, *name ? ": " : "", name);
			free(name);
			goto fail;
		}
		for (size_t i = 0; i < out->n; i++) {
			if (strcmp(out->names[i], name) == 0) {
				snprintf(err, errlen, "%s: '%s' is listed twice", what, name);
				free(name);
				goto fail;
			}
		}
		out->names[out->n++] = name;
		if (p[len] == '\0')
			break;
		p += len + 1;
	}
	return 0;
oom:
	snprintf(err, errlen, "%s: out of memory", what);
fail:
	name_list_free(out);
	return -1;
}

static struct mongo_scope *add_scope(struct mab_config *cfg, const char *db, int line)
{
	struct mongo_scope *grown = realloc(cfg->scopes, (cfg->n_scopes + 1) * sizeof(*grown));

	if (grown == NULL)
		return NULL;
	cfg->scopes = grown;
	struct mongo_scope *s = &cfg->scopes[cfg->n_scopes];
	memset(s, 0, sizeof(*s));
	s->database = strdup(db);
	if (s->database == NULL)
		return NULL;
	s->line = line;
	cfg->n_scopes++;
	return s;
}

static int copy_names(struct name_list *to, const struct name_list *from)
{
	to->all = from->all;
	to->n = 0;
	to->names = calloc(from->n + 1, sizeof(char *));
	if (to->names == NULL)
		return -1;
	for (size_t i = 0; i < from->n; i++) {
		to->names[i] = strdup(from->names[i]);
		if (to->names[i] == NULL)
			return -1;
		to->n++;
	}
	return 0;
}

static const struct db_section *find_section(const struct scope_input *in, const char *db)
{
	for (size_t i = 0; i < in->n_sections; i++)
		if (strcmp(in->sections[i].database, db) == 0)
			return &in->sections[i];
	return NULL;
}

/* Builds cfg->scopes from the keys and sections read.  Problems go to
 * report(ctx, line, message); returns how many there were. */
int config_resolve_scopes(struct mab_config *cfg, const struct scope_input *in,
			  void (*report)(void *ctx, int line, const char *message), void *ctx)
{
	struct name_list dbs = { 0 };
	char err[512];
	int problems = 0;

#define PROBLEM(line, ...) do { \
		snprintf(err, sizeof(err), __VA_ARGS__); \
		report(ctx, (line), err); \
		problems++; \
	} while (0)

	config_free_scopes(cfg);
	for (size_t i = 0; i < in->n_sections; i++) {
		const char *p = database_name_problem(in->sections[i].database);
		if (p != NULL)
			PROBLEM(in->sections[i].line, "[mongodb.%s]: %s", in->sections[i].database, p);
		if (!in->sections[i].has_collections)
			PROBLEM(in->sections[i].line, "[mongodb.%s] says nothing: it takes "
				"collections = NAME, NAME or *", in->sections[i].database);
	}
	if (*cfg->database && *cfg->databases) {
		PROBLEM(in->databases_line, "set database (one) or databases (several), not both");
		goto out;
	}
	if (*cfg->database) {
		if (!config_database_name_ok(cfg->database))
			PROBLEM(in->database_line, "database: '%s' is not a valid database name "
				"(%s)", cfg->database, database_name_problem(cfg->database));
		for (size_t i = 0; i < in->n_sections; i++)
			PROBLEM(in->sections[i].line, "[mongodb.%s] is for databases = ...; with "
				"database = %s the collections are [mongodb] collections",
				in->sections[i].database, cfg->database);
		struct mongo_scope *s = add_scope(cfg, cfg->database, in->database_line);
		if (s == NULL || copy_names(&s->collections, &in->collections) != 0)
			PROBLEM(0, "out of memory");
		goto out;
	}
	if (in->collections_line > 0)
		PROBLEM(in->collections_line, "[mongodb] collections goes with database = NAME; "
			"with %s, give each database its own [mongodb.NAME] collections",
			*cfg->databases ? "databases" : "neither (every database is backed up)");
	if (*cfg->databases == '\0' || strcmp(cfg->databases, "*") == 0) {
		/* The whole instance; a section names a database's collections,
		 * and brings in admin, local or config. */
		cfg->all_databases = true;
		for (size_t i = 0; i < in->n_sections; i++) {
			const struct db_section *sec = &in->sections[i];
			if (find_section(in, sec->database) != sec)
				continue;
			struct mongo_scope *s = add_scope(cfg, sec->database, sec->line);
			if (s == NULL || copy_names(&s->collections, &sec->collections) != 0)
				PROBLEM(0, "out of memory");
		}
		goto out;
	}
	if (config_parse_names(cfg->databases, true, &dbs, err, sizeof(err)) != 0) {
		report(ctx, in->databases_line, err);
		problems++;
		goto out;
	}
	for (size_t i = 0; i < dbs.n; i++) {
		const struct db_section *sec = find_section(in, dbs.names[i]);
		struct mongo_scope *s = add_scope(cfg, dbs.names[i], in->databases_line);
		struct name_list all = { .all = true };
		if (s == NULL || copy_names(&s->collections, sec ? &sec->collections : &all) != 0)
			PROBLEM(0, "out of memory");
	}
	for (size_t i = 0; i < in->n_sections; i++) {
		bool listed = false;
		for (size_t k = 0; k < dbs.n; k++)
			listed |= strcmp(dbs.names[k], in->sections[i].database) == 0;
		if (!listed)
			PROBLEM(in->sections[i].line, "[mongodb.%s]: databases does not name %s "
				"(databases = %s)", in->sections[i].database, in->sections[i].database,
				cfg->databases);
	}
out:
	for (size_t i = 0; i < in->n_sections; i++)
		for (size_t k = 0; k < i; k++)
			if (strcmp(in->sections[i].database, in->sections[k].database) == 0) {
				PROBLEM(in->sections[i].line, "[mongodb.%s] is there already on line %d",
					in->sections[i].database, in->sections[k].line);
				break;
			}
	for (size_t i = 0; i < cfg->n_scopes; i++)
		if (!cfg->scopes[i].collections.all && cfg->scopes[i].collections.n == 0)
			PROBLEM(cfg->scopes[i].line, "database %s: name at least one collection, "
				"or *", cfg->scopes[i].database);
	name_list_free(&dbs);
	return problems;
#undef PROBLEM
}

void config_free_scopes(struct mab_config *cfg)
{
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		free(cfg->scopes[i].database);
		name_list_free(&cfg->scopes[i].collections);
	}
	free(cfg->scopes);
	cfg->scopes = NULL;
	cfg->n_scopes = 0;
	cfg->all_databases = false;
}

const struct mongo_scope *config_scope(const struct mab_config *cfg, const char *database)
{
	for (size_t i = 0; i < cfg->n_scopes; i++)
		if (strcmp(cfg->scopes[i].database, database) == 0)
			return &cfg->scopes[i];
	return NULL;
}

/* mongodump leaves MongoDB's own databases out of a whole-instance dump;
 * here they come in when a [mongodb.NAME] section names them. */
bool config_database_backed_up(const struct mab_config *cfg, const char *database)
{
	if (config_scope(cfg, database) != NULL)
		return true;
	if (!cfg->all_databases)
		return false;
	return strcmp(database, "admin") != 0 && strcmp(database, "local") != 0 &&
	       strcmp(database, "config") != 0;
}

/* mongodump's rule for a database's own collections: system.* are
 * MongoDB's (a time-series collection's buckets come with it), but
 * system.js, the stored functions, is data; admin keeps its system
 * collections but the signing keys. */
bool config_collection_skipped(const char *database, const char *collection)
{
	if (strcmp(database, "admin") == 0)
		return strcmp(collection, "system.keys") == 0;
	if (strcmp(collection, "system.js") == 0)
		return false;
	return strncmp(collection, "system.", 7) == 0 || strchr(collection, '$') != NULL;
}
