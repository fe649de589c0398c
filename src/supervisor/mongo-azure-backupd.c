/* mongo-azure-backupd.c - the supervisor's command line.
 *
 * -t checks a configuration without the network, --check-connect also
 * reaches MongoDB and the storage (both through the helpers, so the
 * supervisor links neither libmongoc nor the Azure client); --once runs one
 * backup in the foreground and
 * exits with its result, which is also what system cron runs; otherwise it
 * runs as the scheduled service (daemon.c).  The --once loop is poll(2) over
 * a signalfd and the run's status sockets: signals arrive as ordinary reads,
 * so no work is ever done in a signal handler.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_run.h"
#include "run_as.h"
#include "breaker.h"
#include "daemon.h"
#include "gzip_engine.h"
#include "log.h"
#include "mab_config.h"
#include "no_core.h"
#include "spawn.h"

#define MAX_POLL_FDS 1024

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: mongo-azure-backupd [-c CONF] [-f] [-t] [--check-connect] [--once]\n"
		"                           [--version]\n"
		"Backs up MongoDB collections to Azure Blob Storage.\n\n"
		"  -c, --config CONF  configuration file (default %s)\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -t, --test         check the configuration without the network: syntax,\n"
		"                     the MongoDB URI, the connection string, permissions of\n"
		"                     the file and the secret files, [metrics] textfile;\n"
		"                     print every problem as FILE:LINE: message, exit 2 if any\n"
		"      --check-connect\n"
		"                     -t, then connect: MongoDB ping and every collection,\n"
		"                     the container written to and deleted from (a probe blob\n"
		"                     at its root); one ok/FAIL line each; exit 0 all passed,\n"
		"                     1 any failed, 2 configuration error\n"
		"      --once         run one backup now in the foreground and exit:\n"
		"                     0 all collections backed up, 1 any failed, 2 config error\n"
		"      --version      print the version and exit\n"
		"  -h, --help         this text\n",
		MAB_DEFAULT_CONFIG);
}

static void print_problem(void *ctx, const char *message)
{
	(void)ctx;
	fprintf(stderr, "%s\n", message);
}

static void log_problem(void *ctx, const char *message)
{
	(void)ctx;
	msg_error("%s", message);
}

/* ---- -t and --check-connect ------------------------------------------- */

/* Runs a helper from helper_dir(), where a run finds it, as
 * "HELPER -c CONF ARG": its problems (FILE:LINE:) go to our stderr, its
 * ok/FAIL lines to our stdout.  The configuration's path, never a secret,
 * is all it gets on argv.  Returns its exit status, or -1 after saying why
 * it did not run to an end. */
static int run_helper(const char *conf_path, const char *helper, const char *arg)
{
	char path[PATH_MAX];
	char *argv[] = { (char *)helper, "-c", (char *)conf_path, (char *)arg, NULL };
	/* No core files: a helper holds the secrets. */
	struct spawn_limits limits = { 0 };
	struct spawn_request req = {
		.path = path, .argv = argv, .stdin_fd = -1, .stdout_fd = STDOUT_FILENO,
		.status_fd = -1, .config_fd = -1, .limits = &limits,
	};
	int status;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/%s", helper_dir(), helper);
	/* What we printed comes before what the helper prints. */
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s:0: cannot write the results: %s\n", conf_path,
			strerror(errno));
		return -1;
	}
	pid = spawn_child(&req);
	if (pid < 0) {
		fprintf(stderr, "%s:0: cannot run %s %s: %s (MAB_LIBEXECDIR or the "
			"installation?)\n", conf_path, path, arg, strerror(errno));
		return -1;
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			fprintf(stderr, "%s:0: %s %s: waitpid: %s\n", conf_path, helper, arg,
				strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	fprintf(stderr, "%s:0: %s %s was killed by signal %d (%s)\n", conf_path, helper, arg,
		WTERMSIG(status), strsignal(WTERMSIG(status)));
	return -1;
}

/* A helper's check of what only it can judge (libmongoc's URI parser,
 * connstr.c): 0 when it passed, else 1 problem (the helper printed it). */
static int helper_problems(const char *conf_path, const char *helper, const char *arg)
{
	int rc = run_helper(conf_path, helper, arg);

	if (rc == 0)
		return 0;
	if (rc > 0 && rc != 2)
		fprintf(stderr, "%s:0: %s %s exited with status %d\n", conf_path, helper, arg,
			rc);
	return 1;
}

/* Whether a secret can be read; config_check() has said why not. */
static bool secret_readable(char *(*get)(const struct mab_config *, char *, size_t),
			    const struct mab_config *cfg)
{
	char err[512];
	char *secret = get(cfg, err, sizeof(err));

	if (secret == NULL)
		return false;
	explicit_bzero(secret, strlen(secret));
	free(secret);
	return true;
}

/* -t: every problem as FILE:LINE: message; the number of them.  cfg is
 * loaded and must be freed by the caller either way. */
static int check_offline(const char *conf_path, struct mab_config *cfg)
{
	int problems = config_load(conf_path, cfg, print_problem, NULL);

	if (problems != 0)
		return problems;
	problems += config_check(cfg, print_problem, NULL);
	/* A secret that cannot be read was reported once; its helper would
	 * only say so again. */
	if (secret_readable(config_mongo_uri, cfg))
		problems += helper_problems(conf_path, "export-collection", "--check-uri");
	/* upload-blob builds the client every upload would: the connection
	 * string parsed, or the token source with its certificate loaded. */
	if (config_azure_uses_token(cfg) ? secret_readable(config_azure_credential, cfg) ||
					   cfg->azure_auth != AZURE_AUTH_SERVICE_PRINCIPAL
					 : secret_readable(config_connection_string, cfg))
		problems += helper_problems(conf_path, "upload-blob", "--check-config");
	return problems;
}

/* --check-connect after a clean -t: each helper prints its own ok/FAIL
 * lines.  EXIT_OK, EXIT_FAILED, or EXIT_USAGE when a helper found the
 * configuration unusable after all. */
static int check_connect(const char *conf_path)
{
	static const char *const helpers[][2] = {
		{ "export-collection", "--check-connect" },
		{ "upload-blob", "--probe" },
	};
	int r = EXIT_OK;

	printf("ok   config: %s\n", conf_path);
	for (size_t i = 0; i < sizeof(helpers) / sizeof(helpers[0]); i++) {
		int rc = run_helper(conf_path, helpers[i][0], helpers[i][1]);
		if (rc == EXIT_USAGE) {
			r = EXIT_USAGE;
		} else if (rc != EXIT_OK) {
			if (rc != EXIT_FAILED)
				printf("FAIL %s %s did not finish (exit status %d)\n", helpers[i][0],
				       helpers[i][1], rc);
			if (r == EXIT_OK)
				r = EXIT_FAILED;
		}
	}
	if (fflush(stdout) != 0)
		r = EXIT_FAILED;
	return r;
}

static int run_checks(const char *conf_path, bool connect)
{
	struct mab_config cfg;
	int problems = check_offline(conf_path, &cfg);
	int r;
	char compression[96];

	/* What auto resolved to is worth seeing before the first run. */
	snprintf(compression, sizeof(compression), "compression: %s level %d, %d thread%s",
		 gzip_engine_name(cfg.compression_engine), cfg.compression_level,
		 gzip_threads_resolve(cfg.compression_threads),
		 gzip_threads_resolve(cfg.compression_threads) == 1 ? "" : "s");
	config_free(&cfg);
	if (problems != 0) {
		fprintf(stderr, "%s: %d problem%s%s\n", conf_path, problems,
			problems == 1 ? "" : "s", connect ? "; nothing was connected to" : "");
		return EXIT_USAGE;
	}
	if (!connect) {
		printf("%s: configuration OK (%s)\n", conf_path, compression);
		return EXIT_OK;
	}
	r = check_connect(conf_path);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "check-connect", no_argument, NULL, 'C' },
		{ "once", no_argument, NULL, 'O' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = MAB_DEFAULT_CONFIG;
	bool test_only = false, check_connect_too = false, once = false, foreground = false;
	struct mab_config cfg;
	int opt, problems;

	/* Before anything can read a secret: no core file may hold it. */
	no_core_dumps();
	while ((opt = getopt_long(argc, argv, "c:fth", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 'f': foreground = true; break;
		case 't': test_only = true; break;
		case 'C': check_connect_too = true; break;
		case 'O': once = true; break;
		case 'V':
			printf("mongo-azure-backupd %s (gzip engines: %s)\n", PACKAGE_VERSION,
			       gzip_engines_built_in());
			return EXIT_OK;
		case 'h': usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "mongo-azure-backupd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EXIT_USAGE;
	}
	umask(077);

	if (test_only || check_connect_too)
		return run_checks(conf_path, check_connect_too);

	log_open("mongo-azure-backupd", LOG_TARGET_STDERR, LOG_INFO);
	problems = config_load(conf_path, &cfg, log_problem, NULL);
	if (problems != 0) {
		msg_error("%s: %d configuration problem%s; nothing was done", conf_path,
			  problems, problems == 1 ? "" : "s");
		config_free(&cfg);
		return EXIT_USAGE;
	}
	/* The background daemon chooses once it has detached. */
	if (once || foreground) {
		char err[512];
		if (daemon_log_open(&cfg, false, err, sizeof(err)) != 0) {
			msg_error("%s", err);
			config_free(&cfg);
			return EXIT_FAILED;
		}
	}

	struct mab_config *owned = malloc(sizeof(*owned));
	if (owned == NULL) {
		msg_error("out of memory");
		config_free(&cfg);
		return EXIT_FAILED;
	}
	*owned = cfg;
	return daemon_main(conf_path, owned, foreground, once);
}
