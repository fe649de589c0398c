/* export_collection.c - export-collection: one MongoDB collection as a gzip
 * compressed mongodump .bson stream on stdout.
 *
 * Documents come off a libmongoc cursor in $natural order and go into zlib
 * as they are, without re-encoding, so the output is byte for byte what the
 * server holds.  With --metadata it writes the collection's mongodump
 * metadata.json (gzip compressed) instead.  With --status-fd it reports an
 * estimate, progress and a final result record to the supervisor
 * (child_status.h).  A reader that goes away (EPIPE) ends the export with
 * exit code 3; a MongoDB failure with exit code 1.
 *
 * Two modes serve `mongo-azure-backupd -t` and `--check-connect`, so that
 * the supervisor never links libmongoc: --check-uri parses the configured
 * URI as libmongoc does (problems as FILE:LINE: on stderr, exit 2), and
 * --check-connect pings the server and looks up every configured
 * collection, one "ok   ..." or "FAIL ..." line each on stdout (exit 0 when
 * all pass, 1 otherwise).
 *
 * This file owns the command line; the export is in export_dump.c, the
 * list (--list) and the checks in export_checks.c (export_dump.h).
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
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

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: export-collection [-c CONF] [--status-fd N] [--metadata]\n"
		"                         [--database DB] [--engine zlib|libdeflate|isal]\n"
		"                         [--level N] [--threads N] COLLECTION\n"
		"       export-collection [-c CONF] --list\n"
		"       export-collection [-c CONF] --check-uri | --check-connect\n"
		"Writes COLLECTION of DB (needed when the configuration names several\n"
		"databases) as a gzip-compressed mongodump .bson stream to stdout: a\n"
		"time-series collection's buckets, a view refused; $admin.system.users\n"
		"and $admin.system.roles are DB's users and roles.  With --metadata: its\n"
		"metadata.json, gzip-compressed.  With --list: what a run backs up, each\n"
		"entry three NUL-terminated strings (database, collection, kind:\n"
		"collection, view, timeseries, users or roles), and with --status-fd an\n"
		"estimate of each collection's size.  The MongoDB URI comes from the\n"
		"config ([mongodb] uri or uri_file) or MONGODB_URI.\n"
		"  --engine, --level, --threads  override [compression] for this export\n"
		"                   (engines built in: %s)\n"
		"  --check-uri      only parse the URI (FILE:LINE: problems, exit 2)\n"
		"  --check-connect  ping the server and check every configured database and\n"
		"                   collection, one ok/FAIL line each (exit 0 all ok, 1 any\n"
		"                   failed)\n",
		gzip_engines_built_in());
}

static bool whole_number(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return false;
	*out = (int)v;
	return true;
}

/* The configuration's [compression], with what the command line names
 * instead.  A level not named follows the engine named. */
static int gzip_choice(struct gzip_settings *g, const struct mab_config *cfg,
		       const char *engine, const char *level, const char *threads)
{
	int min, max, dflt;

	g->engine = cfg->compression_engine;
	g->level = cfg->compression_level;
	g->threads = cfg->compression_threads;
	if (engine != NULL) {
		int e = gzip_engine_from_name(engine);
		if (e < 0 || !gzip_engine_built_in(e)) {
			msg_error("--engine %s: not an engine built in (%s)", engine,
				  gzip_engines_built_in());
			return -1;
		}
		if (e != (int)g->engine && level == NULL) {
			gzip_engine_levels(e, &min, &max, &dflt);
			g->level = dflt;
		}
		g->engine = (enum gzip_engine)e;
	}
	gzip_engine_levels(g->engine, &min, &max, &dflt);
	if (level != NULL && !whole_number(level, min, max, &g->level)) {
		msg_error("--level %s: %s's levels are %d to %d", level,
			  gzip_engine_name(g->engine), min, max);
		return -1;
	}
	if (threads != NULL && !whole_number(threads, 1, GZIP_THREADS_MAX, &g->threads)) {
		msg_error("--threads %s: not a number from 1 to %d", threads, GZIP_THREADS_MAX);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "status-fd", required_argument, NULL, 's' },
		{ "metadata", no_argument, NULL, 'm' },
		{ "list", no_argument, NULL, 'L' },
		{ "database", required_argument, NULL, 'd' },
		{ "level", required_argument, NULL, 'l' },
		{ "engine", required_argument, NULL, 'e' },
		{ "threads", required_argument, NULL, 't' },
		{ "check-uri", no_argument, NULL, 'U' },
		{ "check-connect", no_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct export_job job = { .status_fd = -1 };
	const char *engine_arg = NULL, *level_arg = NULL, *threads_arg = NULL;
	struct mab_config cfg;
	const char *conf_path = MAB_DEFAULT_CONFIG;
	bool metadata = false, list = false, check_uri = false, export_check_connect = false;
	char err[512];
	char *uri_text = NULL;
	mongoc_uri_t *uri = NULL;
	bson_error_t error;
	int opt, r = CHILD_EXIT_USAGE;

	mongo_forget_counters_file();
	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	log_open("export-collection", LOG_TARGET_STDERR, LOG_INFO);
	while ((opt = getopt_long(argc, argv, "c:h", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 's': job.status_fd = atoi(optarg); break;
		case 'm': metadata = true; break;
		case 'L': list = true; break;
		case 'd': job.database = optarg; break;
		case 'l': level_arg = optarg; break;
		case 'e': engine_arg = optarg; break;
		case 't': threads_arg = optarg; break;
		case 'U': check_uri = true; break;
		case 'K': export_check_connect = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return CHILD_EXIT_USAGE;
		}
	}
	bool checking = check_uri || export_check_connect;
	if (optind != argc - (list || checking ? 0 : 1)) {
		usage(stderr);
		return CHILD_EXIT_USAGE;
	}
	job.collection = list || checking ? "" : argv[optind];

	/* A closed stdout must be an EPIPE we can report, not a silent death. */
	signal(SIGPIPE, SIG_IGN);

	if (checking) {
		/* Checks speak to a person: each problem as FILE:LINE: on stderr. */
		if (config_load(conf_path, &cfg, export_print_problem, NULL) != 0) {
			config_free(&cfg);
			return CHILD_EXIT_USAGE;
		}
		job.database = "";
		r = export_run_checks(&job, &cfg, export_check_connect);
		config_free(&cfg);
		return r;
	}
	if (config_load(conf_path, &cfg, NULL, NULL) != 0) {
		msg_error("%s: invalid configuration; run mongo-azure-backupd -t -c %s",
			  conf_path, conf_path);
		if (job.status_fd >= 0)
			status_send(job.status_fd, "result error class=local message="
				    "invalid configuration %s", conf_path);
		config_free(&cfg);
		return CHILD_EXIT_USAGE;
	}
	log_set_level(cfg.log_level);
	if (job.database == NULL && !list) {
		if (cfg.n_scopes == 1 && !cfg.all_databases) {
			job.database = cfg.scopes[0].database;
		} else {
			report_error(&job, ERR_CLASS_LOCAL, "the configuration backs up several "
				     "databases: name one with --database");
			r = CHILD_EXIT_USAGE;
			goto out_cfg;
		}
	}
	if (job.database == NULL)
		job.database = "";
	if (gzip_choice(&job.gzip, &cfg, engine_arg, level_arg, threads_arg) != 0)
		goto out_cfg;
	uri_text = config_mongo_uri(&cfg, err, sizeof(err));
	if (uri_text == NULL) {
		report_error(&job, ERR_CLASS_LOCAL, "%s", err);
		goto out_cfg;
	}

	mongo_log_to_ours();
	mongoc_init();
	uri = mongoc_uri_new_with_error(uri_text, &error);
	explicit_bzero(uri_text, strlen(uri_text));
	if (uri == NULL) {
		/* libmongoc's message quotes no part of the URI's credentials. */
		report_error(&job, ERR_CLASS_LOCAL, "invalid MongoDB URI: %s", error.message);
		goto out_mongoc;
	}
	job.client = mongoc_client_new_from_uri_with_error(uri, &error);
	if (job.client == NULL) {
		report_error(&job, ERR_CLASS_LOCAL, "cannot create a MongoDB client: %s",
			     error.message);
		goto out_mongoc;
	}
	mongoc_client_set_error_api(job.client, MONGOC_ERROR_API_VERSION_2);
	mongoc_client_set_appname(job.client, "mongo-azure-backup");
	job.coll = mongoc_client_get_collection(job.client, job.database, job.collection);

	r = CHILD_EXIT_FAILED;
	if (list) {
		r = export_list(&job, &cfg);
		goto out_mongoc;
	}
	if (strcmp(job.collection, AUTH_USERS_NAME) == 0 ||
	    strcmp(job.collection, AUTH_ROLES_NAME) == 0) {
		if (metadata)
			report_error(&job, ERR_CLASS_LOCAL, "%s has no metadata", job.collection);
		else
			r = export_auth(&job);
		goto out_mongoc;
	}
	if (lookup_collection(&job) != 0)
		goto out_mongoc;
	r = metadata ? export_metadata(&job) : export_documents(&job);

out_mongoc:
	if (job.have_info)
		bson_destroy(&job.info);
	if (job.coll != NULL)
		mongoc_collection_destroy(job.coll);
	if (job.client != NULL)
		mongoc_client_destroy(job.client);
	if (uri != NULL)
		mongoc_uri_destroy(uri);
	mongoc_cleanup();
out_cfg:
	free(uri_text);
	config_free(&cfg);
	return r;
}
