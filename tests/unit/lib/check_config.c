/* check_config.c - the configuration file: defaults, every value type, and
 * that every kind of mistake is reported as FILE:LINE: with a reason; and
 * config_check(), what -t checks around the file (permissions, secrets,
 * the metrics directory). */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "gzip_engine.h"
#include "mab_config.h"
#include "unit_suites.h"

struct problems {
	int n;
	char text[16][512];
};

static void collect(void *ctx, const char *message)
{
	struct problems *p = ctx;

	if (p->n < 16)
		snprintf(p->text[p->n], sizeof(p->text[0]), "%s", message);
	p->n++;
}

static char conf_path[64];

static void write_conf(const char *text)
{
	int fd;

	snprintf(conf_path, sizeof(conf_path), "/tmp/check_config.XXXXXX");
	fd = mkstemp(conf_path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static int load(const char *text, struct mab_config *cfg, struct problems *p)
{
	memset(p, 0, sizeof(*p));
	write_conf(text);
	int n = config_load(conf_path, cfg, collect, p);
	unlink(conf_path);
	return n;
}

/* The one problem reported names this file, this line and contains want. */
static void expect_problem(const char *text, int line, const char *want)
{
	struct mab_config cfg;
	struct problems p;
	char prefix[96];

	ck_assert_int_ge(load(text, &cfg, &p), 1);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
	ck_assert_msg(strncmp(p.text[0], prefix, strlen(prefix)) == 0,
		      "expected prefix '%s' in '%s'", prefix, p.text[0]);
	ck_assert_msg(strstr(p.text[0], want) != NULL, "expected '%s' in '%s'", want,
		      p.text[0]);
	config_free(&cfg);
}

START_TEST(defaults_are_the_seed_values)
{
	struct mab_config cfg;
	struct problems p;

	ck_assert_int_eq(load("", &cfg, &p), 0);
	ck_assert_str_eq(cfg.cron, "0 3 * * *");
	ck_assert_str_eq(cfg.timezone, "UTC");
	ck_assert_str_eq(cfg.container, "backups");
	ck_assert_str_eq(cfg.blob_path, "backups/{date}/{database}_{collection}.bson.gz");
	/* The whole instance, as mongodump backs it up. */
	ck_assert_str_eq(cfg.database, "");
	ck_assert(cfg.all_databases);
	ck_assert_int_eq(cfg.n_scopes, 0);
	ck_assert(cfg.collections.all);
	ck_assert(!cfg.users_and_roles);
	ck_assert_int_eq(cfg.retention_days, 30);
	ck_assert_int_eq(cfg.keep_min, 3);
	ck_assert_int_eq(cfg.failure_threshold, 5);
	ck_assert_int_eq(cfg.open_seconds, 30);
	ck_assert_uint_eq(cfg.block_size, 8u << 20);
	ck_assert_int_eq(cfg.upload_concurrency, 4);
	ck_assert_int_eq(cfg.compression_engine, gzip_engine_default());
	ck_assert_int_eq(cfg.compression_level, 6);
	ck_assert_int_eq(cfg.compression_threads, 0);
	ck_assert_int_eq(cfg.run_timeout, 6 * 3600);
	ck_assert_uint_eq(cfg.child_memory, 1ull << 30);
	ck_assert_int_ge(cfg.parallel, 1);
	ck_assert_int_eq(cfg.catch_up, -1);
	ck_assert(cfg.create_container);
	config_free(&cfg);
}
END_TEST

START_TEST(every_type_parses)
{
	struct mab_config cfg;
	struct problems p;
	const char *text =
		"# comment\n"
		"[schedule]\ncron = */5 * * * *\ntimezone = America/New_York\ncatch_up = no\n"
		"[mongodb]\nuri = mongodb://db1:27017/\ndatabase = app\n"
		"collections = a, b.c ,d-e\n"
		"[azure]\nconnection_string = UseDevelopmentStorage=true\ncontainer = my-backups\n"
		"blob_path = x/{date}/{time}/{collection}.bson.gz\nblock_size = 16MiB\n"
		"upload_concurrency = 2\ncreate_container = off\nmax_retries = 0\n"
		"[retention]\ndays = 7\nkeep_min = 1\n"
		"[limits]\nparallel = 3\nchild_memory = 512M\nrun_timeout = 90m\nchild_cpu = 2h\n"
		"[compression]\nengine = zlib\nlevel = 9\nthreads = 3\n"
		"[log]\nlevel = debug\ntarget = stderr\n";

	ck_assert_int_eq(load(text, &cfg, &p), 0);
	ck_assert_str_eq(cfg.cron, "*/5 * * * *");
	ck_assert_str_eq(cfg.timezone, "America/New_York");
	ck_assert_int_eq(cfg.catch_up, 0);
	ck_assert_int_eq(cfg.collections.n, 3);
	ck_assert_str_eq(cfg.collections.names[1], "b.c");
	ck_assert_str_eq(cfg.collections.names[2], "d-e");
	ck_assert_ptr_null(cfg.collections.names[3]);
	ck_assert(!cfg.all_databases);
	ck_assert_int_eq(cfg.n_scopes, 1);
	ck_assert_str_eq(cfg.scopes[0].database, "app");
	ck_assert_int_eq(cfg.scopes[0].collections.n, 3);
	ck_assert_uint_eq(cfg.block_size, 16u << 20);
	ck_assert(!cfg.create_container);
	ck_assert_int_eq(cfg.max_retries, 0);
	ck_assert_int_eq(cfg.parallel, 3);
	ck_assert_uint_eq(cfg.child_memory, 512u << 20);
	ck_assert_int_eq(cfg.run_timeout, 5400);
	ck_assert_int_eq(cfg.child_cpu_seconds, 7200);
	ck_assert_int_eq(cfg.compression_engine, GZIP_ENGINE_ZLIB);
	ck_assert_int_eq(cfg.compression_level, 9);
	ck_assert_int_eq(cfg.compression_threads, 3);
	ck_assert_int_eq(cfg.log_level, LOG_DEBUG);
	ck_assert_int_eq(cfg.log_target, LOG_TARGET_STDERR);
	config_free(&cfg);
}
END_TEST

/* Token sign-in: what each source reads, with the environment AKS sets
 * for workload identity, and the defaults. */
START_TEST(azure_auth_sources)
{
	struct mab_config cfg;
	struct problems p;

	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	ck_assert_int_eq(load("[azure]\naccount_url = https://acct.blob.core.windows.net\n",
			      &cfg, &p), 0);
	/* An account URL and no connection string: the machine's identity. */
	ck_assert_int_eq(cfg.azure_auth, AZURE_AUTH_MANAGED_IDENTITY);
	ck_assert_str_eq(cfg.authority_host, AZURE_AUTH_DEFAULT_AUTHORITY);
	ck_assert_str_eq(cfg.identity_endpoint, AZURE_AUTH_DEFAULT_IMDS);
	ck_assert(config_azure_uses_token(&cfg));
	config_free(&cfg);

	setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555", 1);
	setenv("AZURE_TENANT_ID", "contoso.onmicrosoft.com", 1);
	setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/token", 1);
	setenv("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/", 1);
	ck_assert_int_eq(load("[azure]\nauth = workload_identity\n"
			      "account_url = https://acct.blob.core.windows.net\n", &cfg, &p), 0);
	ck_assert_str_eq(cfg.client_id, "11111111-2222-3333-4444-555555555555");
	ck_assert_str_eq(cfg.tenant_id, "contoso.onmicrosoft.com");
	ck_assert_str_eq(cfg.federated_token_file, "/var/run/secrets/azure/tokens/token");
	ck_assert_str_eq(cfg.authority_host, "https://login.microsoftonline.us/");
	config_free(&cfg);
	/* The environment fills only what the file leaves out, and only for
	 * workload identity. */
	ck_assert_int_eq(load("[azure]\nauth = managed_identity\n"
			      "account_url = https://acct.blob.core.windows.net\n", &cfg, &p), 0);
	ck_assert_str_eq(cfg.client_id, "");
	config_free(&cfg);
	unsetenv("AZURE_CLIENT_ID");
	unsetenv("AZURE_TENANT_ID");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("AZURE_AUTHORITY_HOST");

	ck_assert_int_eq(load("[azure]\nauth = service_principal\n"
			      "account_url = https://acct.blob.core.windows.net\n"
			      "tenant_id = 72f988bf-86f1-41af-91ab-2d7cd011db47\n"
			      "client_id = 0c3d2f5a-1b2c-4d5e-8f90-123456789abc\n"
			      "client_certificate_file = /etc/mab/sp.pem\n", &cfg, &p), 0);
	ck_assert_int_eq(cfg.azure_auth, AZURE_AUTH_SERVICE_PRINCIPAL);
	config_free(&cfg);
	/* A connection string alone: its own key or SAS, no token. */
	ck_assert_int_eq(load("[azure]\nconnection_string_file = /c\n", &cfg, &p), 0);
	ck_assert(!config_azure_uses_token(&cfg));
	config_free(&cfg);
}
END_TEST

/* A level not named is the named engine's own default, whatever the
 * default engine's would be. */
START_TEST(level_follows_the_engine)
{
	struct mab_config cfg;
	struct problems p;

	ck_assert_int_eq(load("[compression]\nengine = zlib\n", &cfg, &p), 0);
	ck_assert_int_eq(cfg.compression_level, 6);
	config_free(&cfg);
	ck_assert_int_eq(load("[compression]\nengine = auto\nlevel = auto\nthreads = auto\n",
			      &cfg, &p), 0);
	ck_assert_int_eq(cfg.compression_engine, gzip_engine_default());
	ck_assert_int_eq(cfg.compression_threads, 0);
	config_free(&cfg);
#ifdef HAVE_ISAL
	ck_assert_int_eq(load("[compression]\nengine = isal\n", &cfg, &p), 0);
	ck_assert_int_eq(cfg.compression_engine, GZIP_ENGINE_ISAL);
	ck_assert_int_eq(cfg.compression_level, 1);
	config_free(&cfg);
#endif
#ifdef HAVE_LIBDEFLATE
	ck_assert_int_eq(load("[compression]\nengine = libdeflate\nlevel = 12\n", &cfg, &p), 0);
	ck_assert_int_eq(cfg.compression_level, 12);
	config_free(&cfg);
#endif
}
END_TEST

START_TEST(several_databases)
{
	struct mab_config cfg;
	struct problems p;

	/* The seed's setup, in three lines. */
	ck_assert_int_eq(load("[mongodb]\ndatabase = tralivali\n"
			      "collections = users, conversations, messages, invites, files\n",
			      &cfg, &p), 0);
	ck_assert_int_eq(cfg.n_scopes, 1);
	ck_assert_str_eq(cfg.scopes[0].database, "tralivali");
	ck_assert_int_eq(cfg.scopes[0].collections.n, 5);
	ck_assert(!cfg.all_databases);
	config_free(&cfg);

	ck_assert_int_eq(load("[mongodb]\ndatabases = a, b\nusers_and_roles = yes\n"
			      "[mongodb.b]\ncollections = x, y\n", &cfg, &p), 0);
	ck_assert_int_eq(cfg.n_scopes, 2);
	ck_assert_str_eq(cfg.scopes[0].database, "a");
	ck_assert(cfg.scopes[0].collections.all);
	ck_assert_str_eq(cfg.scopes[1].database, "b");
	ck_assert_int_eq(cfg.scopes[1].collections.n, 2);
	ck_assert(cfg.users_and_roles);
	ck_assert(config_database_backed_up(&cfg, "a"));
	ck_assert(!config_database_backed_up(&cfg, "c"));
	config_free(&cfg);

	/* databases = *: every database but MongoDB's own, unless named. */
	ck_assert_int_eq(load("[mongodb]\ndatabases = *\n[mongodb.admin]\ncollections = *\n"
			      "[mongodb.app]\ncollections = users,\n  events\n", &cfg, &p), 0);
	ck_assert(cfg.all_databases);
	ck_assert(config_database_backed_up(&cfg, "admin"));
	ck_assert(config_database_backed_up(&cfg, "other"));
	ck_assert(!config_database_backed_up(&cfg, "local"));
	ck_assert(!config_database_backed_up(&cfg, "config"));
	ck_assert_int_eq(config_scope(&cfg, "app")->collections.n, 2);
	ck_assert_str_eq(config_scope(&cfg, "app")->collections.names[1], "events");
	config_free(&cfg);

	ck_assert(config_collection_skipped("app", "system.views"));
	ck_assert(config_collection_skipped("app", "system.buckets.t"));
	ck_assert(!config_collection_skipped("app", "system.js"));
	ck_assert(!config_collection_skipped("admin", "system.users"));
	ck_assert(config_collection_skipped("admin", "system.keys"));
}
END_TEST

START_TEST(database_problems)
{
	expect_problem("[mongodb]\ndatabase = a\ndatabases = b\n", 3, "not both");
	expect_problem("[mongodb]\ncollections = x\n", 2, "goes with database");
	expect_problem("[mongodb]\ndatabases = a, a\n", 2, "listed twice");
	expect_problem("[mongodb]\ndatabases = a.b\n", 2, "database names cannot");
	expect_problem("[mongodb]\ndatabases = a\n[mongodb.b]\ncollections = x\n", 4,
		       "databases does not name b");
	expect_problem("[mongodb]\ndatabase = a\n[mongodb.a]\ncollections = x\n", 4,
		       "[mongodb] collections");
	expect_problem("[mongodb.a]\nindexes = no\n", 2, "unknown key 'indexes'");
	expect_problem("[mongodb]\ndatabases = a\n[mongodb.a]\ncollections = x\n"
		       "collections = y\n", 5, "already set on line 4");
	expect_problem("[mongodb]\ndatabases = a\n[mongodb.a]\ncollections = system.x\n", 4,
		       "system collections");
	/* Two databases, one blob per collection name: {database} needed. */
	expect_problem("[mongodb]\ndatabases = a, b\n[azure]\n"
		       "blob_path = b/{date}/{collection}.bson.gz\n", 4, "has no {database}");
	expect_problem("[azure]\nblob_path = b/{date}/{collection}.bson.gz\n", 2,
		       "has no {database}");
	/* Names that render alike. */
	expect_problem("[mongodb]\ndatabases = a_b, a\n[mongodb.a_b]\ncollections = c\n"
		       "[mongodb.a]\ncollections = b_c\n[azure]\n"
		       "blob_path = b/{date}/{database}_{collection}.bson.gz\n", 8,
		       "a.b_c would both be written to b/");
	expect_problem("[azure]\nblob_path = b/{database}/{date}/{collection}.bson.gz\n", 2,
		       "{database} once, in its last segment");
}
END_TEST

START_TEST(star_means_all_collections)
{
	struct mab_config cfg;
	struct problems p;

	ck_assert_int_eq(load("[mongodb]\ndatabase = app\ncollections = *\n", &cfg, &p), 0);
	ck_assert(cfg.collections.all);
	ck_assert_int_eq(cfg.collections.n, 0);
	config_free(&cfg);
}
END_TEST

START_TEST(long_values_continue_on_indented_lines)
{
	struct mab_config cfg;
	struct problems p;
	const char *text = "[azure]\nconnection_string = BlobEndpoint=https://a.blob.core.windows.net/;\n"
			   "    SharedAccessSignature=sv=2021&sig=abc\n";

	ck_assert_int_eq(load(text, &cfg, &p), 0);
	ck_assert_str_eq(cfg.connection_string,
			 "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2021&sig=abc");
	config_free(&cfg);
}
END_TEST

START_TEST(errors_name_file_and_line)
{
	expect_problem("[azure]\nbogus = 1\n", 2, "unknown key 'bogus' in section [azure]");
	expect_problem("\n\n[nonsense]\nx = 1\n", 4, "unknown section [nonsense]");
	expect_problem("[retention]\ndays = -3\n", 2, "days: '-3' is not a whole number from 1 to 36500");
	expect_problem("[retention]\ndays = 3x\n", 2, "is not a whole number");
	expect_problem("[azure]\nblock_size = 8Q\n", 2, "block_size: '8Q' is not a size");
	expect_problem("[azure]\nblock_size = 5000M\n", 2, "block_size");
	expect_problem("[limits]\nrun_timeout = soon\n", 2, "run_timeout: 'soon' is not a duration");
	expect_problem("[azure]\ncreate_container = maybe\n", 2, "is not yes or no");
	expect_problem("[log]\nlevel = loud\n", 2, "level: 'loud' is not one of");
	expect_problem("[log]\ntarget = printer\n", 2, "target: 'printer'");
	expect_problem("[schedule]\ncatch_up = later\n", 2, "catch_up: 'later'");
	expect_problem("[azure]\ncontainer = Bad_Name\n", 2, "not a valid container name");
	expect_problem("[mongodb]\ndatabase = a.b\n", 2, "not a valid database name");
	expect_problem("[mongodb]\ncollections = a, a\n", 2, "'a' is listed twice");
	expect_problem("[mongodb]\ncollections = a, $b\n", 2, "cannot contain '$'");
	expect_problem("[mongodb]\ncollections = system.users\n", 2, "system collections");
	expect_problem("[mongodb]\ncollections = a,,b\n", 2, "empty collection name");
	expect_problem("[azure]\ncontainer =\n", 2, "container: a value is required");
	expect_problem("[azure]\nblob_path = backups/{collection}.bson.gz\n", 2, "{date}");
	expect_problem("[azure]\nblob_path = {collection}/{date}/x.bson.gz\n", 2, "{collection}");
	expect_problem("[azure]\nblob_path = b/{date}/{collection}.tar\n", 2, "must end in .bson.gz");
	expect_problem("[azure]\nblob_path = b/{date}/{coll}.bson.gz\n", 2, "unknown placeholder");
	expect_problem("[azure]\nblob_path = b/../{date}/{collection}.bson.gz\n", 2, "'..'");
	expect_problem("[azure]\ncontainer = abc\ncontainer = def\n", 3, "already set on line 2");
	expect_problem("[azure]\nconnection_string = x\nconnection_string_file = /f\n", 3, "not both");
	expect_problem("[schedule]\ntimezone = Mars/Olympus\n", 2, "not a time zone");
	expect_problem("[azure]\nthis line has no equals sign\n", 2, "syntax error");
	expect_problem("[azure]\nauth = password\n", 2,
		       "auth: 'password' is not shared_key, sas, managed_identity");
	expect_problem("[azure]\nauth = managed_identity\n", 2,
		       "auth = managed_identity needs account_url");
	expect_problem("[azure]\nauth = managed_identity\n"
		       "account_url = http://a.blob.core.windows.net\n", 3,
		       "account_url: 'http://a.blob.core.windows.net' is not an https:// URL");
	expect_problem("[azure]\nauth = service_principal\n"
		       "account_url = https://a.blob.core.windows.net\ntenant_id = t\n"
		       "client_secret_file = /s\n", 2, "needs client_id");
	expect_problem("[azure]\nauth = service_principal\n"
		       "account_url = https://a.blob.core.windows.net\ntenant_id = t\n"
		       "client_id = c\n", 2, "needs client_secret_file or client_certificate_file");
	expect_problem("[azure]\nauth = service_principal\n"
		       "account_url = https://a.blob.core.windows.net\ntenant_id = t/../x\n"
		       "client_id = c\nclient_secret_file = /s\n", 4, "tenant_id: 't/../x'");
	expect_problem("[azure]\nauth = managed_identity\n"
		       "account_url = https://a.blob.core.windows.net\n"
		       "client_secret_file = /s\n", 4,
		       "client_secret_file is not used with auth = managed_identity");
	expect_problem("[azure]\nauth = managed_identity\n"
		       "account_url = https://a.blob.core.windows.net\n"
		       "connection_string_file = /c\n", 4,
		       "a connection string is not used with auth = managed_identity");
	expect_problem("[azure]\nconnection_string_file = /c\naccount_url = "
		       "https://a.blob.core.windows.net\nauth = sas\n", 3,
		       "account_url is for token sign-in");
	expect_problem("[azure]\nauth = managed_identity\n"
		       "account_url = https://a.blob.core.windows.net\n"
		       "authority_host = login.example\n", 4,
		       "authority_host: 'login.example' is not an https:// URL");
	expect_problem("[compression]\nlevel = 13\n", 2,
		       "level: '13' is not auto or a whole number from 0 to 12");
	expect_problem("[compression]\nengine = zlib\nlevel = 10\n", 3,
		       "level: 10 is outside zlib's levels, 1 to 9");
	expect_problem("[compression]\nlevel = 0\nengine = zlib\n", 2,
		       "level: 0 is outside zlib's levels");
	expect_problem("[compression]\nengine = zstd\n", 2,
		       "engine: 'zstd' is not zlib, libdeflate, isal or auto");
	expect_problem("[compression]\nthreads = 0\n", 2,
		       "threads: '0' is not auto or a whole number from 1 to 16");
	expect_problem("[compression]\nthreads = many\n", 2, "threads: 'many'");
#ifdef HAVE_ISAL
	expect_problem("[compression]\nengine = isal\nlevel = 4\n", 3,
		       "level: 4 is outside isal's levels, 0 to 3");
#else
	expect_problem("[compression]\nengine = isal\n", 2,
		       "engine: isal is not built into this program");
#endif
#ifndef HAVE_LIBDEFLATE
	expect_problem("[compression]\nengine = libdeflate\n", 2,
		       "engine: libdeflate is not built into this program");
#endif
	expect_problem("\n[schedule]\ncron = 0 3 * *\n", 3, "cron: expected 5 or 6 fields");
	expect_problem("[schedule]\ncron = 0 25 * * *\n", 2, "cron: hour field");
	expect_problem("[schedule]\ncron = 0 0 30 2 *\n", 2, "never fires");
}
END_TEST

START_TEST(every_problem_is_reported)
{
	struct mab_config cfg;
	struct problems p;

	ck_assert_int_eq(load("[azure]\nx = 1\ny = 2\n[retention]\ndays = 0\n", &cfg, &p), 3);
	ck_assert(strstr(p.text[0], ":2: ") != NULL);
	ck_assert(strstr(p.text[1], ":3: ") != NULL);
	ck_assert(strstr(p.text[2], ":5: ") != NULL);
	config_free(&cfg);
}
END_TEST

START_TEST(long_lines_are_read_whole)
{
	char text[2400], want[1100], list[1100];
	struct mab_config cfg;
	struct problems p;

	/* inih's buffer is 200 bytes; real connection strings are longer. */
	snprintf(want, sizeof(want), "BlobEndpoint=https://a.blob.core.windows.net/;"
		 "SharedAccessSignature=sv=2021-12-02&sig=%0900d", 7);
	size_t used = 0;
	for (int i = 0; i < 120; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%scoll%03d",
					 i ? ", " : "", i);
	snprintf(text, sizeof(text), "[mongodb]\ndatabase = d\ncollections = %s\n[azure]\n"
		 "connection_string = %s\ncontainer = abc\n", list, want);
	ck_assert_int_eq(load(text, &cfg, &p), 0);
	ck_assert_str_eq(cfg.connection_string, want);
	ck_assert_int_eq(cfg.collections.n, 120);
	ck_assert_str_eq(cfg.collections.names[119], "coll119");
	ck_assert_str_eq(cfg.container, "abc");
	config_free(&cfg);

	/* Line numbers after a long line are still right. */
	snprintf(text, sizeof(text), "[azure]\nconnection_string = %s\nbogus = 1\n", want);
	expect_problem(text, 3, "unknown key 'bogus'");
}
END_TEST

START_TEST(missing_file)
{
	struct mab_config cfg;
	struct problems p = { 0 };

	ck_assert_int_eq(config_load("/nonexistent/x.conf", &cfg, collect, &p), 1);
	ck_assert(strstr(p.text[0], "/nonexistent/x.conf:0: cannot open") != NULL);
	config_free(&cfg);
}
END_TEST

START_TEST(secret_file_must_be_private)
{
	struct mab_config cfg;
	struct problems p;
	char secret_path[] = "/tmp/check_secret.XXXXXX";
	char text[256], err[512];
	const char *key = "AccountKey=c2VjcmV0";
	int fd = mkstemp(secret_path);
	char *got;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, key, strlen(key)), (ssize_t)strlen(key));
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	close(fd);
	snprintf(text, sizeof(text), "[azure]\nconnection_string_file = %s\n", secret_path);
	ck_assert_int_eq(load(text, &cfg, &p), 0);

	ck_assert_int_eq(chmod(secret_path, 0600), 0);
	got = config_connection_string(&cfg, err, sizeof(err));
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, key);
	free(got);

	ck_assert_int_eq(chmod(secret_path, 0640), 0);
	got = config_connection_string(&cfg, err, sizeof(err));
	ck_assert_ptr_null(got);
	ck_assert(strstr(err, "readable by group or others") != NULL);
	ck_assert(strstr(err, "c2VjcmV0") == NULL);

	unlink(secret_path);
	got = config_connection_string(&cfg, err, sizeof(err));
	ck_assert_ptr_null(got);
	ck_assert(strstr(err, "cannot open") != NULL);
	config_free(&cfg);
}
END_TEST

START_TEST(sizes_and_durations)
{
	uint64_t size;
	int seconds;

	ck_assert_int_eq(config_parse_size("512k", &size), 0);
	ck_assert_uint_eq(size, 512u << 10);
	ck_assert_int_eq(config_parse_size("1G", &size), 0);
	ck_assert_uint_eq(size, 1u << 30);
	ck_assert_int_eq(config_parse_size("2TB", &size), 0);
	ck_assert_uint_eq(size, 2ull << 40);
	ck_assert_int_eq(config_parse_size("", &size), -1);
	ck_assert_int_eq(config_parse_size("-1M", &size), -1);
	ck_assert_int_eq(config_parse_size("99999999999999999999", &size), -1);
	ck_assert_int_eq(config_parse_duration("45", &seconds), 0);
	ck_assert_int_eq(seconds, 45);
	ck_assert_int_eq(config_parse_duration("2d", &seconds), 0);
	ck_assert_int_eq(seconds, 172800);
	ck_assert_int_eq(config_parse_duration("1w", &seconds), -1);
	ck_assert_int_eq(config_parse_duration("9999999999h", &seconds), -1);
}
END_TEST


/* ---- config_check: what -t checks around the file ---------------------- */

static char check_dir[64];

/* A private temporary directory for one test's files. */
static void make_check_dir(void)
{
	snprintf(check_dir, sizeof(check_dir), "/tmp/check_config_dir.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(check_dir));
}

static void remove_check_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", check_dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Writes DIR/name with mode and returns its path (in a static buffer that
 * the next call reuses). */
static const char *put_file(const char *name, const char *text, mode_t mode)
{
	static char path[160];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", check_dir, name);
	fp = fopen(path, "w");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fputs(text, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return path;
}

/* Loads DIR/mab.conf (mode) and runs config_check; its problems in p. */
static int check_file(const char *text, mode_t mode, struct problems *p)
{
	struct mab_config cfg;
	const char *path = put_file("mab.conf", text, mode);

	memset(p, 0, sizeof(*p));
	ck_assert_int_eq(config_load(path, &cfg, collect, p), 0);
	int n = config_check(&cfg, collect, p);
	config_free(&cfg);
	return n;
}

/* Some problem reads "DIR/mab.conf:LINE: ..." and contains want. */
static void expect_check(const struct problems *p, int line, const char *want)
{
	char prefix[128];

	snprintf(prefix, sizeof(prefix), "%s/mab.conf:%d: ", check_dir, line);
	for (int i = 0; i < p->n && i < 16; i++)
		if (strncmp(p->text[i], prefix, strlen(prefix)) == 0 &&
		    strstr(p->text[i], want) != NULL)
			return;
	ck_abort_msg("no problem '%s...%s' among %d: first '%s'", prefix, want, p->n,
		     p->n ? p->text[0] : "");
}

/* Secrets that config_check can find without asking the environment. */
#define QUIET_SECRETS "[mongodb]\nuri = mongodb://db1:27017/\n" \
		      "[azure]\nconnection_string = UseDevelopmentStorage=true\n"

START_TEST(key_lines_are_kept)
{
	struct mab_config cfg;
	struct problems p;

	ck_assert_int_eq(load("# x\n[azure]\ncontainer = abc\n\n[mongodb]\nuri = mongodb://h/\n",
			      &cfg, &p), 0);
	ck_assert_int_eq(config_key_line(&cfg, "azure", "container"), 3);
	ck_assert_int_eq(config_key_line(&cfg, "mongodb", "uri"), 6);
	ck_assert_int_eq(config_key_line(&cfg, "MongoDB", "URI"), 6);
	ck_assert_int_eq(config_key_line(&cfg, "azure", "block_size"), 0);
	ck_assert_int_eq(config_key_line(&cfg, "azure", "nonsense"), 0);
	config_free(&cfg);
}
END_TEST

START_TEST(clean_file_passes)
{
	struct problems p;

	make_check_dir();
	ck_assert_int_eq(check_file(QUIET_SECRETS, 0600, &p), 0);
	/* Readable by others is fine while it holds no secret. */
	ck_assert_int_eq(check_file(QUIET_SECRETS, 0644, &p), 0);
	ck_assert_int_eq(check_file("[mongodb]\nuri = mongodb://backup@db1/?authSource=admin\n"
				    "[azure]\nconnection_string = UseDevelopmentStorage=true\n",
				    0644, &p), 0);
	remove_check_dir();
}
END_TEST

START_TEST(writable_config_refused)
{
	struct problems p;

	make_check_dir();
	ck_assert_int_eq(check_file(QUIET_SECRETS, 0620, &p), 1);
	expect_check(&p, 0, "writable by group or others (mode 0620)");
	expect_check(&p, 0, "chmod go-w");
	ck_assert_int_eq(check_file(QUIET_SECRETS, 0602, &p), 1);
	expect_check(&p, 0, "writable by group or others (mode 0602)");
	remove_check_dir();
}
END_TEST

START_TEST(config_of_another_user_refused)
{
	struct problems p;

	if (geteuid() != 0)
		return;  /* only root can give a file away */
	make_check_dir();
	const char *path = put_file("mab.conf", QUIET_SECRETS, 0600);
	ck_assert_int_eq(chown(path, 65534, (gid_t)-1), 0);
	struct mab_config cfg;
	memset(&p, 0, sizeof(p));
	ck_assert_int_eq(config_load(path, &cfg, collect, &p), 0);
	ck_assert_int_eq(config_check(&cfg, collect, &p), 1);
	config_free(&cfg);
	expect_check(&p, 0, "owned by uid 65534");
	expect_check(&p, 0, "chown root");
	remove_check_dir();
}
END_TEST

START_TEST(inline_secrets_must_be_private)
{
	struct problems p;
	const char *key = "[mongodb]\nuri = mongodb://db1/\n[azure]\n"
			  "connection_string = DefaultEndpointsProtocol=https;AccountName=a;"
			  "AccountKey=c2VjcmV0a2V5\n";
	const char *sas = "[mongodb]\nuri = mongodb://db1/\n[azure]\n"
			  "connection_string = BlobEndpoint=https://a.blob.core.windows.net;"
			  " sharedaccesssignature = sv=2021&sig=abcd\n";
	const char *pw = "[mongodb]\nuri = mongodb://backup:hunter22@db1,db2/?replicaSet=r\n"
			 "[azure]\nconnection_string = UseDevelopmentStorage=true\n";

	make_check_dir();
	ck_assert_int_eq(check_file(key, 0644, &p), 1);
	expect_check(&p, 4, "connection_string holds the account key or SAS");
	expect_check(&p, 4, "mode 0644");
	expect_check(&p, 4, "chmod 600");
	ck_assert(strstr(p.text[0], "c2VjcmV0a2V5") == NULL);
	ck_assert_int_eq(check_file(key, 0640, &p), 1);
	ck_assert_int_eq(check_file(key, 0600, &p), 0);
	/* Key names are case-insensitive, as connection strings are. */
	ck_assert_int_eq(check_file(sas, 0604, &p), 1);
	expect_check(&p, 4, "connection_string holds the account key or SAS");
	ck_assert_int_eq(check_file(sas, 0600, &p), 0);
	ck_assert_int_eq(check_file(pw, 0640, &p), 1);
	expect_check(&p, 2, "uri holds a password");
	ck_assert(strstr(p.text[0], "hunter22") == NULL);
	ck_assert_int_eq(check_file(pw, 0600, &p), 0);
	remove_check_dir();
}
END_TEST

START_TEST(secret_files_must_be_private)
{
	struct problems p;
	char text[512], secret[160];

	make_check_dir();
	snprintf(secret, sizeof(secret), "%s",
		 put_file("conn", "AccountName=a;AccountKey=c2VjcmV0\n", 0600));
	snprintf(text, sizeof(text), "[mongodb]\nuri = mongodb://db1/\n\n[azure]\n"
		 "connection_string_file = %s\n", secret);
	ck_assert_int_eq(check_file(text, 0644, &p), 0);

	ck_assert_int_eq(chmod(secret, 0640), 0);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 5, "readable by group or others (mode 0640)");
	expect_check(&p, 5, "run chmod 600 on it");
	/* Writable by the group lets someone else swap the account. */
	ck_assert_int_eq(chmod(secret, 0620), 0);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 5, "open to group or others (mode 0620)");

	ck_assert_int_eq(chmod(secret, 0600), 0);
	if (geteuid() == 0 && getpwnam("nobody") != NULL && getpwnam("nobody")->pw_uid == 65534) {
		ck_assert_int_eq(chown(secret, 65534, (gid_t)-1), 0);
		ck_assert_int_eq(check_file(text, 0600, &p), 1);
		expect_check(&p, 5, "owned by uid 65534, neither root nor this user");
		/* The daemon's own user may own what it reads. */
		char with_user[600];
		snprintf(with_user, sizeof(with_user), "%s[daemon]\nuser = nobody\n", text);
		ck_assert_int_eq(check_file(with_user, 0600, &p), 0);
		ck_assert_int_eq(chown(secret, 0, (gid_t)-1), 0);
	}
	ck_assert_int_eq(unlink(secret), 0);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 5, "cannot open");

	/* uri_file: the same rules, blamed on its own line. */
	put_file("uri", "mongodb://u:p@db1/\n", 0644);
	snprintf(text, sizeof(text), "[azure]\nconnection_string = UseDevelopmentStorage=true\n"
		 "[mongodb]\nuri_file = %s/uri\n", check_dir);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 4, "MongoDB URI");
	expect_check(&p, 4, "readable by group or others");
	remove_check_dir();
}
END_TEST

START_TEST(metrics_directory_must_be_writable)
{
	struct problems p;
	char text[512];

	make_check_dir();
	snprintf(text, sizeof(text), QUIET_SECRETS "[metrics]\ntextfile = %s/mab.prom\n",
		 check_dir);
	ck_assert_int_eq(check_file(text, 0600, &p), 0);

	snprintf(text, sizeof(text), QUIET_SECRETS "[metrics]\ntextfile = %s/nodir/mab.prom\n",
		 check_dir);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 6, "textfile: directory");
	expect_check(&p, 6, "No such file or directory");

	ck_assert_int_eq(check_file(QUIET_SECRETS "[metrics]\ntextfile = mab.prom\n", 0600, &p), 1);
	expect_check(&p, 6, "is not an absolute path");

	/* The file's place is taken by a directory. */
	snprintf(text, sizeof(text), QUIET_SECRETS "[metrics]\ntextfile = %s/sub\n", check_dir);
	snprintf(text + 400, 100, "%s/sub", check_dir);
	ck_assert_int_eq(mkdir(text + 400, 0700), 0);
	ck_assert_int_eq(check_file(text, 0600, &p), 1);
	expect_check(&p, 6, "is not a regular file");

	/* Root may write anywhere; only others learn of a read-only directory. */
	if (geteuid() != 0) {
		snprintf(text + 400, 100, "%s/ro", check_dir);
		ck_assert_int_eq(mkdir(text + 400, 0500), 0);
		snprintf(text, 400, QUIET_SECRETS "[metrics]\ntextfile = %s/ro/m.prom\n", check_dir);
		ck_assert_int_eq(check_file(text, 0600, &p), 1);
		expect_check(&p, 6, "is not writable by uid");
	}
	remove_check_dir();
}
END_TEST

START_TEST(missing_secrets_are_reported)
{
	struct problems p;

	make_check_dir();
	/* Neither in the file nor in the environment. */
	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	ck_assert_int_eq(check_file("[mongodb]\nuri = mongodb://db1/\n", 0600, &p), 1);
	expect_check(&p, 0, "no Azure connection string configured");
	remove_check_dir();
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_add_test(tc, defaults_are_the_seed_values);
	tcase_add_test(tc, every_type_parses);
	tcase_add_test(tc, level_follows_the_engine);
	tcase_add_test(tc, azure_auth_sources);
	tcase_add_test(tc, star_means_all_collections);
	tcase_add_test(tc, several_databases);
	tcase_add_test(tc, database_problems);
	tcase_add_test(tc, long_values_continue_on_indented_lines);
	tcase_add_test(tc, errors_name_file_and_line);
	tcase_add_test(tc, every_problem_is_reported);
	tcase_add_test(tc, long_lines_are_read_whole);
	tcase_add_test(tc, missing_file);
	tcase_add_test(tc, secret_file_must_be_private);
	tcase_add_test(tc, sizes_and_durations);
	tcase_add_test(tc, key_lines_are_kept);
	tcase_add_test(tc, clean_file_passes);
	tcase_add_test(tc, writable_config_refused);
	tcase_add_test(tc, config_of_another_user_refused);
	tcase_add_test(tc, inline_secrets_must_be_private);
	tcase_add_test(tc, secret_files_must_be_private);
	tcase_add_test(tc, metrics_directory_must_be_writable);
	tcase_add_test(tc, missing_secrets_are_reported);
	suite_add_tcase(s, tc);
	return s;
}
