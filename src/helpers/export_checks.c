/* export_checks.c - what export-collection answers before any export:
 * for the supervisor (--list) the collections a run backs up with an
 * estimate of each one's size, and for mongo-azure-backupd -t and
 * --check-connect the [mongodb] uri parsed (and never echoed with its
 * password), and with --check-connect the server reached and each
 * configured collection found.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "child_status.h"
#include "gzip_out.h"
#include "log.h"
#include "mongo_log.h"
#include "mab_config.h"
#include "no_core.h"
#include "xio.h"
#include "export_dump.h"

/* ---- what a run finds to back up -------------------------------------- */

/* Every collection-like entry of a database: collections, views and
 * time-series collections (listCollections, cursor pages and all). */
static mongoc_cursor_t *find_collections(mongoc_database_t *db)
{
	return mongoc_database_find_collections_with_opts(db, NULL);
}

/* The name and kind of a listCollections entry a run backs up, or NULL:
 * mongodump's system collections left out, and a name with a NUL in it
 * could not be told apart in the list. */
static const char *backed_up_name(const char *database, const bson_t *doc, uint32_t *len,
				  const char **kind)
{
	bson_iter_t it;
	const char *name;

	*kind = "collection";
	if (bson_iter_init_find(&it, doc, "type") && BSON_ITER_HOLDS_UTF8(&it))
		*kind = bson_iter_utf8(&it, NULL);
	if (strcmp(*kind, "collection") != 0 && strcmp(*kind, "view") != 0 &&
	    strcmp(*kind, "timeseries") != 0)
		return NULL;
	if (!bson_iter_init_find(&it, doc, "name") || !BSON_ITER_HOLDS_UTF8(&it))
		return NULL;
	name = bson_iter_utf8(&it, len);
	if (memchr(name, '\0', *len) != NULL || config_collection_skipped(database, name))
		return NULL;
	return name;
}

/* ---- --list: what a run backs up, and how big each collection is ------- */

#define MONGO_NAMESPACE_NOT_FOUND 26
#define MONGO_COMMAND_NOT_SUPPORTED_ON_VIEW 166

/* An error the server did not answer with (no server selected, the
 * connection lost, the login refused): the next query would only wait the
 * same time for the same failure. */
static bool unreachable(const bson_error_t *error)
{
	return error->domain != MONGOC_ERROR_SERVER;
}

/* For a configured name: a collection, not a view (counting a view would
 * run its pipeline) and not missing. */
static bool is_collection(struct export_job *job, const char *name)
{
	const char *saved = job->collection, *class;
	char why[640];
	bool r;

	job->collection = name;
	r = find_collection(job, &class, why, sizeof(why)) == 0;
	if (!r)
		msg_debug("no size estimate for '%s': %s", name, why);
	if (job->have_info)
		bson_destroy(&job->info);
	job->have_info = false;
	job->collection = saved;
	return r;
}

/* One collection's estimate as a "size" record, by its place in the list:
 * collStats' size (the sum of the BSON sizes of its documents, what the
 * export streams), or where collStats is not allowed the document count;
 * none for a view or a missing collection.  0 goes on, -1 stops the
 * estimates: the server is gone, or the supervisor is. */
static int send_size(struct export_job *job, size_t index, const char *name, bool listed)
{
	mongoc_database_t *db = mongoc_client_get_database(job->client, job->database);

	mongoc_collection_t *coll = NULL;
	bson_t cmd = BSON_INITIALIZER, reply;
	bson_error_t error;
	bson_iter_t it;
	int64_t n;
	int r = 0;

	BSON_APPEND_UTF8(&cmd, "collStats", name);
	if (mongoc_database_read_command_with_opts(db, &cmd, NULL, NULL, &reply, &error)) {
		if (bson_iter_init_find(&it, &reply, "size") && BSON_ITER_HOLDS_NUMBER(&it) &&
		    (n = bson_iter_as_int64(&it)) >= 0) {
			r = status_send(job->status_fd, "size index=%zu bson_bytes=%" PRId64,
					index, n);
			goto out;
		}
	} else if (unreachable(&error)) {
		msg_warn("no size estimates from '%s' on: %s", name, error.message);
		r = -1;
		goto out;
	} else {
		msg_debug("collStats of '%s' failed: %s", name, error.message);
		if (error.code == MONGO_NAMESPACE_NOT_FOUND ||
		    error.code == MONGO_COMMAND_NOT_SUPPORTED_ON_VIEW)
			goto out;
	}
	if (!listed && !is_collection(job, name))
		goto out;
	coll = mongoc_client_get_collection(job->client, job->database, name);
	n = mongoc_collection_estimated_document_count(coll, NULL, NULL, NULL, &error);
	if (n >= 0) {
		r = status_send(job->status_fd, "size index=%zu documents=%" PRId64, index, n);
	} else if (unreachable(&error)) {
		msg_warn("no size estimates from '%s' on: %s", name, error.message);
		r = -1;
	} else {
		msg_debug("no size estimate for '%s': %s", name, error.message);
	}
out:
	if (coll != NULL)
		mongoc_collection_destroy(coll);
	bson_destroy(&reply);
	bson_destroy(&cmd);
	mongoc_database_destroy(db);
	return r;
}

/* One entry of the list, with its estimate while there are estimates to
 * be had.  -1 when stdout failed (reported). */
static int list_one(struct export_job *job, size_t index, const char *name, size_t len,
		    const char *kind, bool listed, bool *estimating)
{
	size_t dlen = strlen(job->database) + 1, klen = strlen(kind) + 1;

	if (xwrite_all(STDOUT_FILENO, job->database, dlen) != 0 ||
	    xwrite_all(STDOUT_FILENO, name, len + 1) != 0 ||
	    xwrite_all(STDOUT_FILENO, kind, klen) != 0) {
		report_error(job, errno == EPIPE ? ERR_CLASS_ABORTED : ERR_CLASS_LOCAL,
			     "writing the collection list failed: %s", strerror(errno));
		return -1;
	}
	if (*estimating && strcmp(kind, "collection") == 0 &&
	    send_size(job, index, name, listed) != 0)
		*estimating = false;
	return 0;
}

/* A named collection's kind: a view or a time-series collection is backed
 * up as one; a missing one is listed as a collection, and its export
 * says it is missing. */
static const char *named_kind(struct export_job *job, const char *name, bool *found)
{
	const char *saved = job->collection, *class, *kind = "collection";
	char why[640];
	bson_iter_t it;

	job->collection = name;
	*found = find_collection(job, &class, why, sizeof(why)) == 0;
	if (*found && bson_iter_init_find(&it, &job->info, "type") && BSON_ITER_HOLDS_UTF8(&it)) {
		const char *t = bson_iter_utf8(&it, NULL);
		kind = strcmp(t, "view") == 0 ? "view" :
		       strcmp(t, "timeseries") == 0 ? "timeseries" : "collection";
	}
	if (job->have_info)
		bson_destroy(&job->info);
	job->have_info = false;
	job->collection = saved;
	return kind;
}

/* One database's part of the list; -1 when it failed (reported). */
static int list_database(struct export_job *job, const struct mab_config *cfg,
			 size_t *count, bool *estimating)
{
	const struct mongo_scope *scope = config_scope(cfg, job->database);
	mongoc_database_t *db = NULL;
	mongoc_cursor_t *cursor = NULL;
	bson_error_t error;
	const bson_t *doc;
	int r = -1;

	if (scope != NULL && !scope->collections.all) {
		for (size_t i = 0; i < scope->collections.n; i++) {
			const char *name = scope->collections.names[i];
			bool found = false;
			const char *kind = named_kind(job, name, &found);
			if (list_one(job, (*count)++, name, strlen(name), kind, found,
				     estimating) != 0)
				return -1;
		}
		goto auth;
	}
	db = mongoc_client_get_database(job->client, job->database);
	cursor = find_collections(db);
	while (mongoc_cursor_next(cursor, &doc)) {
		uint32_t len;
		const char *kind;
		const char *name = backed_up_name(job->database, doc, &len, &kind);
		if (name == NULL)
			continue;
		if (list_one(job, (*count)++, name, len, kind, true, estimating) != 0)
			goto out;
	}
	if (mongoc_cursor_error(cursor, &error)) {
		report_error(job, mongo_error_class(&error),
			     "listing collections of database '%s' failed: %s", job->database,
			     error.message);
		goto out;
	}
auth:
	/* mongodump --dumpDbUsersAndRoles' two files, by its names; roles
	 * first, which the users may be granted. */
	if (cfg->users_and_roles &&
	    (list_one(job, (*count)++, AUTH_ROLES_NAME, strlen(AUTH_ROLES_NAME), "roles", false,
		      estimating) != 0 ||
	     list_one(job, (*count)++, AUTH_USERS_NAME, strlen(AUTH_USERS_NAME), "users", false,
		      estimating) != 0))
		goto out;
	r = 0;
out:
	if (cursor != NULL)
		mongoc_cursor_destroy(cursor);
	if (db != NULL)
		mongoc_database_destroy(db);
	return r;
}

/* The databases of databases = *: what listDatabases names, but MongoDB's
 * own unless a section names them, then the named ones it did not list
 * (their collections, named, are reported missing by their exports).
 * NULL-terminated; NULL when the listing failed (reported). */
static char **find_databases(struct export_job *job, const struct mab_config *cfg)
{
	bson_t opts = BSON_INITIALIZER;
	bson_error_t error;
	char **names = NULL;
	size_t n = 0;

	BSON_APPEND_BOOL(&opts, "nameOnly", true);
	names = mongoc_client_get_database_names_with_opts(job->client, &opts, &error);
	bson_destroy(&opts);
	if (names == NULL) {
		report_error(job, mongo_error_class(&error), "listing the databases failed: %s",
			     error.message);
		return NULL;
	}
	for (size_t i = 0; names[i] != NULL; i++) {
		if (config_database_backed_up(cfg, names[i]))
			names[n++] = names[i];
		else
			bson_free(names[i]);
	}
	names[n] = NULL;
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		bool listed = false;
		for (size_t k = 0; k < n; k++)
			listed |= strcmp(names[k], cfg->scopes[i].database) == 0;
		if (listed)
			continue;
		char **grown = bson_realloc(names, (n + 2) * sizeof(char *));
		names = grown;
		names[n++] = bson_strdup(cfg->scopes[i].database);
		names[n] = NULL;
	}
	return names;
}

/* --list: what a run backs up, in the order its manifest keeps: for each
 * database (those found with databases = *, else the named ones) its
 * collections (found with collections = *, else the named ones, found or
 * not), and with users_and_roles its users and roles.  Each entry is
 * three NUL-terminated strings on stdout: database, name, kind
 * (collection, view, timeseries, users, roles).  With --status-fd, after
 * each collection a "size" record for it by its place in the list
 * (job_order.h in the supervisor).  Only listing can fail; an estimate
 * never does, and without one the collection starts last. */
int export_list(struct export_job *job, const struct mab_config *cfg)
{
	bool estimating = job->status_fd >= 0;
	char **databases = NULL;
	size_t count = 0;
	int r = CHILD_EXIT_FAILED;

	if (cfg->all_databases) {
		databases = find_databases(job, cfg);
		if (databases == NULL)
			goto out;
	} else {
		databases = bson_malloc0((cfg->n_scopes + 1) * sizeof(char *));
		for (size_t i = 0; i < cfg->n_scopes; i++)
			databases[i] = bson_strdup(cfg->scopes[i].database);
	}
	for (size_t i = 0; databases[i] != NULL; i++) {
		job->database = databases[i];
		if (list_database(job, cfg, &count, &estimating) != 0)
			goto out;
	}
	if (job->status_fd >= 0)
		status_send(job->status_fd, "result ok documents=%zu", count);
	r = CHILD_EXIT_OK;
out:
	job->database = "";
	bson_strfreev(databases);
	return r;
}

/* ---- checks: mongo-azure-backupd -t and --check-connect ---------------- */

void export_print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s\n", message);
}

/* Where the URI came from, for "FILE:LINE: WHERE: message". */
static void uri_source(const struct mab_config *cfg, int *line, char *where, size_t len)
{
	*line = 0;
	if (*cfg->mongo_uri_file) {
		*line = config_key_line(cfg, "mongodb", "uri_file");
		snprintf(where, len, "uri_file %s", cfg->mongo_uri_file);
	} else if (*cfg->mongo_uri) {
		*line = config_key_line(cfg, "mongodb", "uri");
		snprintf(where, len, "uri");
	} else {
		snprintf(where, len, "%s", getenv("MONGODB_URI") ? "MONGODB_URI" :
			 "the default URI");
	}
}

/* libmongoc's parse errors quote no credentials; should one ever quote
 * the password (user:PASSWORD@), the message is not shown at all. */
static bool quotes_password(const char *uri, const char *message)
{
	const char *p = strstr(uri, "://"), *at = NULL;

	if (p == NULL)
		return false;
	p += 3;
	for (const char *q = p; *q != '\0' && *q != '/'; q++)
		if (*q == '@')
			at = q;
	const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon == NULL || at - colon - 1 < 3)
		return false;
	char *password = strndup(colon + 1, (size_t)(at - colon - 1));
	/* Out of memory: assume the worst. */
	bool found = password == NULL || strstr(message, password) != NULL;
	if (password != NULL) {
		explicit_bzero(password, strlen(password));
		free(password);
	}
	return found;
}

/* The URI as every export will parse it: 0 with *out set, or
 * CHILD_EXIT_USAGE after printing FILE:LINE: why.  mongoc_init() first. */
static int parse_uri(const struct mab_config *cfg, mongoc_uri_t **out)
{
	char err[512], where[600];
	bson_error_t error;
	int line;
	char *text = config_mongo_uri(cfg, err, sizeof(err));

	uri_source(cfg, &line, where, sizeof(where));
	if (text == NULL) {
		fprintf(stderr, "%s:%d: %s\n", cfg->path, line, err);
		return CHILD_EXIT_USAGE;
	}
	*out = mongoc_uri_new_with_error(text, &error);
	if (*out == NULL)
		fprintf(stderr, "%s:%d: %s: %s\n", cfg->path, line, where,
			quotes_password(text, error.message) ?
			"not a MongoDB URI (libmongoc's message is not shown: it quotes the "
			"password)" : error.message);
	explicit_bzero(text, strlen(text));
	free(text);
	return *out == NULL ? CHILD_EXIT_USAGE : 0;
}

static void check_line(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void check_line(bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs(ok ? "ok   mongodb: " : "FAIL mongodb: ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* The collections = * case: what a run would back up.  -1 on error. */
static long count_collections(struct export_job *job, bson_error_t *error)
{
	mongoc_database_t *db = mongoc_client_get_database(job->client, job->database);
	mongoc_cursor_t *cursor = find_collections(db);
	const bson_t *doc;
	uint32_t len;
	long n = 0;

	const char *kind;

	while (mongoc_cursor_next(cursor, &doc))
		if (backed_up_name(job->database, doc, &len, &kind) != NULL)
			n++;
	if (mongoc_cursor_error(cursor, error))
		n = -1;
	mongoc_cursor_destroy(cursor);
	mongoc_database_destroy(db);
	return n;
}

/* One configured collection: it exists, is a collection, and a find (what
 * the export runs) is allowed.  true when all holds. */
static bool check_collection(struct export_job *job, const char *name)
{
	const char *class = ERR_CLASS_MONGO;
	bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
	bson_error_t error;
	const bson_t *doc;
	char why[640];
	bool ok = false;

	job->collection = name;
	if (job->have_info) {
		bson_destroy(&job->info);
		job->have_info = false;
	}
	if (find_collection(job, &class, why, sizeof(why)) != 0) {
		check_line(false, "%s", why);
		goto out;
	}
	mongoc_collection_t *coll = mongoc_client_get_collection(job->client, job->database,
								  name);
	BSON_APPEND_INT64(&opts, "limit", 1);
	mongoc_cursor_t *cursor = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
	mongoc_cursor_next(cursor, &doc);
	ok = !mongoc_cursor_error(cursor, &error);
	if (ok)
		check_line(true, "collection '%s' of database '%s' exists and can be read",
			   name, job->database);
	else
		check_line(false, "collection '%s' of database '%s' cannot be read: %s", name,
			   job->database, error.message);
	mongoc_cursor_destroy(cursor);
	mongoc_collection_destroy(coll);
out:
	bson_destroy(&filter);
	bson_destroy(&opts);
	return ok;
}

/* --check-connect: ping, then every collection a run would export. */
int export_check_connect(struct export_job *job, const struct mab_config *cfg,
			 const mongoc_uri_t *uri)
{
	bson_t ping = BSON_INITIALIZER, reply;
	bson_error_t error;
	char hosts[256] = "";
	size_t used = 0;
	int failed = 0;

	/* Host names and ports only: never the user information. */
	for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(uri); h != NULL; h = h->next) {
		int n = snprintf(hosts + used, sizeof(hosts) - used, "%s%s", used ? "," : "",
				 h->host_and_port);
		if (n < 0 || (size_t)n >= sizeof(hosts) - used)
			break;
		used += (size_t)n;
	}
	if (used == 0 && mongoc_uri_get_srv_hostname(uri) != NULL)
		snprintf(hosts, sizeof(hosts), "%s (SRV)", mongoc_uri_get_srv_hostname(uri));

	BSON_APPEND_INT32(&ping, "ping", 1);
	bool pinged = mongoc_client_command_simple(job->client, "admin", &ping, NULL, &reply,
						   &error);
	bson_destroy(&reply);
	bson_destroy(&ping);
	if (!pinged) {
		check_line(false, "ping %s: %s (the collections were not checked)", hosts,
			   error.message);
		return CHILD_EXIT_FAILED;
	}
	check_line(true, "ping %s", hosts);

	if (cfg->all_databases) {
		char **names = find_databases(job, cfg);
		size_t n = 0;
		while (names != NULL && names[n] != NULL)
			n++;
		if (names == NULL)
			check_line(false, "listing the databases failed (see above)");
		else if (n == 0)
			check_line(false, "the server holds no database to back up (databases = *; "
				   "admin, local and config only when named)");
		else
			check_line(true, "%zu database%s to back up", n, n == 1 ? "" : "s");
		failed += n == 0;
		bson_strfreev(names);
	}
	for (size_t i = 0; i < cfg->n_scopes; i++) {
		const struct mongo_scope *sc = &cfg->scopes[i];
		job->database = sc->database;
		if (!sc->collections.all) {
			for (size_t c = 0; c < sc->collections.n; c++)
				failed += !check_collection(job, sc->collections.names[c]);
			continue;
		}
		long n = count_collections(job, &error);
		if (n < 0)
			check_line(false, "listing the collections of database '%s' failed: %s",
				   job->database, error.message);
		else if (n == 0)
			check_line(false, "database '%s' holds no collections (collections = *)",
				   job->database);
		else
			check_line(true, "database '%s' holds %ld collection%s to back up",
				   job->database, n, n == 1 ? "" : "s");
		failed += n <= 0;
	}
	job->database = "";
	return failed ? CHILD_EXIT_FAILED : CHILD_EXIT_OK;
}

/* --check-uri and --check-connect: exit 0 all passed, 1 a connection check
 * failed, 2 the configuration (or the URI) is wrong. */
int export_run_checks(struct export_job *job, const struct mab_config *cfg, bool connect)
{
	mongoc_uri_t *uri = NULL;
	bson_error_t error;
	int r;

	mongo_log_to_ours();
	mongoc_init();
	r = parse_uri(cfg, &uri);
	if (r != 0 || !connect)
		goto out;
	job->client = mongoc_client_new_from_uri_with_error(uri, &error);
	if (job->client == NULL) {
		check_line(false, "cannot create a client: %s", error.message);
		r = CHILD_EXIT_FAILED;
		goto out;
	}
	mongoc_client_set_error_api(job->client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(job->client, "mongo-azure-backup");
	r = export_check_connect(job, cfg, uri);
out:
	if (job->have_info)
		bson_destroy(&job->info);
	job->have_info = false;
	if (job->client != NULL)
		mongoc_client_destroy(job->client);
	job->client = NULL;
	if (uri != NULL)
		mongoc_uri_destroy(uri);
	mongoc_cleanup();
	return r;
}
