/* export_dump.h - what export-collection's files share: the job (struct
 * export_job), the export itself (export_dump.c) and the checks
 * (export_checks.c), both called by export_collection.c (main).
 */
#ifndef MAB_EXPORT_DUMP_H
#define MAB_EXPORT_DUMP_H

#include <bson/bson.h>
#include <mongoc/mongoc.h>
#include <stdbool.h>

#include "gzip_out.h"
#include "mab_config.h"

/* mongodump --dumpDbUsersAndRoles' names for a database's users and
 * roles (from admin.system.users / admin.system.roles). */
#define AUTH_USERS_NAME "$admin.system.users"
#define AUTH_ROLES_NAME "$admin.system.roles"

struct export_job {
	const char *collection;
	const char *database;
	struct gzip_settings gzip;
	int status_fd;
	mongoc_client_t *client;
	mongoc_collection_t *coll;
	bson_t info;             /* listCollections entry */
	char type[16];           /* its type: collection, view or timeseries */
	bool have_info;
};

/* export_dump.c */
int export_documents(struct export_job *job);
int export_metadata(struct export_job *job);
/* AUTH_USERS_NAME / AUTH_ROLES_NAME of job->database. */
int export_auth(struct export_job *job);
int find_collection(struct export_job *job, const char **class, char *why,
		    size_t whylen);
int lookup_collection(struct export_job *job);
/* The status record's error class for a libmongoc error. */
const char *mongo_error_class(const bson_error_t *error);
void report_error(const struct export_job *job, const char *class,
		  const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* export_checks.c */
int export_check_connect(struct export_job *job, const struct mab_config *cfg,
			 const mongoc_uri_t *uri);
int export_list(struct export_job *job, const struct mab_config *cfg);
void export_print_problem(void *ctx, const char *message);
int export_run_checks(struct export_job *job, const struct mab_config *cfg, bool connect);

#endif
