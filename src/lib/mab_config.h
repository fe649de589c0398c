/* mab_config.h - the configuration file: one table of every key, its
 * default and its bounds, parsed with inih.
 *
 * Every problem is reported as "FILE:LINE: message" through a callback, so
 * `mongo-azure-backupd -t` can print all of them and the daemon can refuse a
 * bad reload while keeping the old configuration.  config_check() adds what
 * -t checks about the file's surroundings: permissions, the secrets, the
 * metrics directory.
 */
#ifndef MAB_CONFIG_H
#define MAB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for the line numbers of every key (mab_config.c checks the fit). */
#define MAB_CONFIG_MAX_KEYS 96

/* [azure] auth: how storage requests prove who they are. */
enum azure_auth {
	AZURE_AUTH_SHARED_KEY,         /* AccountKey in the connection string */
	AZURE_AUTH_SAS,                /* SharedAccessSignature in it */
	AZURE_AUTH_MANAGED_IDENTITY,   /* a token from IMDS / App Service / Arc */
	AZURE_AUTH_SERVICE_PRINCIPAL,  /* from Entra ID: secret or certificate */
	AZURE_AUTH_WORKLOAD_IDENTITY,  /* from Entra ID: a federated token */
};
#define AZURE_AUTH_DEFAULT_AUTHORITY "https://login.microsoftonline.com"
#define AZURE_AUTH_DEFAULT_IMDS "http://169.254.169.254/metadata/identity/oauth2/token"

/* A list of names from the file, or "*" (all). */
struct name_list {
	char **names;                  /* NULL-terminated; empty when all */
	size_t n;
	bool all;
};

/* One database a run backs up and which of its collections. */
struct mongo_scope {
	char *database;
	struct name_list collections;
	int line;                      /* where it was named; 0: nowhere */
};

struct mab_config {
	char *path;
	char *text;                    /* the file as read (may hold secrets) */
	size_t text_len;

	/* [schedule] */
	char *cron;
	char *timezone;
	int catch_up;                  /* 1 yes, 0 no, -1 auto */

	/* [mongodb] (uri may hold a password: never log it) */
	char *mongo_uri;
	char *mongo_uri_file;
	char *database;                /* the one-database form, or "" */
	char *databases;               /* as written: "a, b", "*" or "" */
	struct name_list collections;  /* [mongodb] collections (with database) */
	bool users_and_roles;
	/* What a run backs up, resolved from the keys above and the
	 * [mongodb.NAME] sections: every database found at the run's start
	 * (all_databases: databases = *, or neither key), else the scopes. */
	bool all_databases;
	struct mongo_scope *scopes;    /* the named databases, in order */
	size_t n_scopes;

	/* [azure] (connection_string holds the key: never log it) */
	char *connection_string;
	char *connection_string_file;
	int azure_auth;                /* AZURE_AUTH_*; resolved after loading */
	char *account_url;
	char *client_id;
	char *tenant_id;
	char *client_secret_file;
	char *client_certificate_file;
	char *federated_token_file;
	char *authority_host;
	char *identity_endpoint;
	char *ca_file;
	char *container;
	char *blob_path;
	uint64_t block_size;           /* bytes */
	int upload_concurrency;
	bool create_container;
	int max_retries;               /* per request, transient errors only */

	/* [retention] */
	int retention_days;
	int keep_min;

	/* [breaker] */
	int failure_threshold;
	int open_seconds;

	/* [limits] */
	int parallel;
	uint64_t child_memory;         /* bytes, 0 = unlimited */
	int child_cpu_seconds;         /* 0 = unlimited */
	int child_open_files;
	int run_timeout;               /* seconds */
	int export_retries;

	/* [compression]: after loading, engine and level are resolved (an
	 * engine built in, a level in its range); threads 0 = auto. */
	int compression_engine;        /* enum gzip_engine */
	int compression_level;
	int compression_threads;

	/* [control] */
	char *control_socket;
	char *control_group;

	/* [state] */
	char *state_dir;

	/* [daemon] */
	char *pid_file;
	char *user;

	/* [log] */
	int log_level;                 /* syslog priority */
	int log_target;                /* LOG_TARGET_*, or -1 for auto */
	char *log_file;                /* [log] file, for target file (and auto) */

	/* [notify] */
	char *on_success;
	char *on_failure;
	int hook_timeout;

	/* [metrics] */
	char *metrics_textfile;

	/* [verify] */
	bool verify_after_backup;

	/* The line each key was set on (0: not in the file), in the order of
	 * mab_config.c's key table; read it with config_key_line(). */
	int key_lines[MAB_CONFIG_MAX_KEYS];
};

/* mab_config_scope.c: the databases and collections of a run. */
void name_list_free(struct name_list *l);
int config_parse_names(const char *value, bool databases, struct name_list *out,
		       char *err, size_t errlen);
bool config_database_name_ok(const char *name);
void config_free_scopes(struct mab_config *cfg);
/* The scope of a database named in the configuration, or NULL. */
const struct mongo_scope *config_scope(const struct mab_config *cfg, const char *database);
/* Whether a database found on the server is backed up. */
bool config_database_backed_up(const struct mab_config *cfg, const char *database);
/* Whether a collection found in a database is left out, as mongodump
 * leaves it out. */
bool config_collection_skipped(const char *database, const char *collection);

/* Called once per problem with "FILE:LINE: message" (LINE 0: whole file). */
typedef void (*config_report_fn)(void *ctx, const char *message);

/* Fills cfg with defaults, then the file.  Returns the number of problems
 * reported (0 = usable).  cfg must be released with config_free() either way. */
int config_load(const char *path, struct mab_config *cfg,
		config_report_fn report, void *ctx);
void config_defaults(struct mab_config *cfg);
void config_free(struct mab_config *cfg);

/* The line of [section] name in the file cfg was loaded from; 0 when the
 * key was not set there (its default applies) or is unknown. */
int config_key_line(const struct mab_config *cfg, const char *section, const char *name);

/* What `mongo-azure-backupd -t` checks beyond the syntax, on this machine
 * and without the network (the URI and the connection string are checked
 * by the helpers that use them):
 *   - the file is not writable by group or others, nor owned by a user
 *     other than root or us: its hooks run as the daemon, and it decides
 *     where the backups go;
 *   - a secret written in it (AccountKey or SharedAccessSignature in
 *     connection_string, a password in uri) is not readable by others;
 *   - the secrets can be read: connection_string_file and uri_file are
 *     regular files, private (no group or other bits) and owned by root,
 *     us or [daemon] user (the rules config_connection_string() applies);
 *   - [metrics] textfile is an absolute path in a writable directory.
 * Each problem goes to report as "FILE:LINE: message" saying what to do;
 * returns their number.  For a file an operator names, not for the
 * supervisor's sealed copy of it (a memfd's mode says nothing). */
int config_check(const struct mab_config *cfg, config_report_fn report, void *ctx);

/* The connection string, from connection_string or connection_string_file
 * (refused when group/world readable, or owned by a user other than root,
 * us or [daemon] user), or the environment variable
 * AZURE_STORAGE_CONNECTION_STRING when the config has neither.  Returns a
 * malloc'd string or NULL with a message (never containing the secret) in err. */
char *config_connection_string(const struct mab_config *cfg, char *err, size_t errlen);
/* The MongoDB URI, from uri or uri_file, same rules (env MONGODB_URI). */
char *config_mongo_uri(const struct mab_config *cfg, char *err, size_t errlen);
/* Whether storage requests carry an Entra ID bearer token. */
bool config_azure_uses_token(const struct mab_config *cfg);
/* The secret the token source needs: client_secret_file's text or
 * client_certificate_file's PEM (same file rules as above), malloc'd; NULL
 * with err[0] == '\0' when the configured auth needs none, NULL with a
 * message otherwise. */
char *config_azure_credential(const struct mab_config *cfg, char *err, size_t errlen);

/* "8M", "1G", "512k", "1048576" -> bytes; -1 on bad input. */
int config_parse_size(const char *text, uint64_t *out);
/* "6h", "90m", "30s", "45" (seconds) -> seconds; -1 on bad input. */
int config_parse_duration(const char *text, int *out);

#define MAB_DEFAULT_CONFIG SYSCONFDIR "/mongo-azure-backup/mongo-azure-backup.conf"

#endif
