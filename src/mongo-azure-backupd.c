/* mongo-azure-backupd.c - the supervisor's command line.
 *
 * -t checks a configuration; --once runs one backup in the foreground and
 * exits with its result, which is also what system cron runs; otherwise it
 * runs as the scheduled service (daemon.c).  The --once loop is poll(2) over
 * a signalfd and the run's status sockets: signals arrive as ordinary reads,
 * so no work is ever done in a signal handler.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
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
#include "log.h"
#include "mab_config.h"

#define MAX_POLL_FDS 1024

enum exit_code { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static void usage(FILE *fp)
{
	fprintf(fp,
		"Usage: mongo-azure-backupd [-c CONF] [-f] [-t] [--once] [--version]\n"
		"Backs up MongoDB collections to Azure Blob Storage.\n\n"
		"  -c, --config CONF  configuration file (default %s)\n"
		"  -f, --foreground   stay in the foreground, log to stderr\n"
		"  -t, --test         check the configuration, print every problem, exit\n"
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

/* What -t checks beyond the file's syntax: that the secrets can be read. */
static int check_secrets(const struct mab_config *cfg)
{
	char err[512];
	char *secret;
	int problems = 0;

	secret = config_connection_string(cfg, err, sizeof(err));
	if (secret == NULL) {
		fprintf(stderr, "%s:0: %s\n", cfg->path, err);
		problems++;
	} else {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	secret = config_mongo_uri(cfg, err, sizeof(err));
	if (secret == NULL) {
		fprintf(stderr, "%s:0: %s\n", cfg->path, err);
		problems++;
	} else {
		explicit_bzero(secret, strlen(secret));
		free(secret);
	}
	return problems;
}

static int open_signalfd(sigset_t *mask)
{
	sigemptyset(mask);
	sigaddset(mask, SIGCHLD);
	sigaddset(mask, SIGTERM);
	sigaddset(mask, SIGINT);
	sigaddset(mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, mask, NULL) != 0)
		return -1;
	return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void reap_children(struct backup_run *run)
{
	for (;;) {
		int status;
		struct rusage usage;
		pid_t pid = wait4(-1, &status, WNOHANG, &usage);
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (!backup_run_child_exited(run, pid, status, &usage))
			msg_debug("reaped unknown child %ld", (long)pid);
	}
}

static int run_once(const struct mab_config *cfg)
{
	struct backup_run run;
	struct pollfd fds[MAX_POLL_FDS];
	sigset_t mask;
	int sfd = open_signalfd(&mask);
	int r = EXIT_FAILED;

	if (sfd < 0) {
		msg_error("cannot set up signal handling: %s", strerror(errno));
		return EXIT_FAILED;
	}
	/* --once keeps its breaker for this run only; the service's persists. */
	struct breaker breaker;
	struct run_as run_as;
	char err[512];
	breaker_init(&breaker, cfg->failure_threshold, cfg->open_seconds);
	if (run_as_resolve(cfg->user, &run_as, err, sizeof(err)) != 0) {
		msg_error("%s", err);
		close(sfd);
		return EXIT_USAGE;
	}
	if (backup_run_start(&run, cfg, &breaker, &run_as, NULL, 0) != 0) {
		if (run.failure[0] && run.phase != RUN_FINISHED)
			msg_error("cannot start the run: %s", run.failure);
		goto out;
	}
	while (!backup_run_finished(&run)) {
		backup_run_step(&run);
		if (backup_run_finished(&run))
			break;
		fds[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		size_t n = 1 + backup_run_pollfds(&run, fds + 1, MAX_POLL_FDS - 1);
		int rc = poll(fds, n, backup_run_timeout_ms(&run));
		if (rc < 0 && errno != EINTR) {
			msg_error("poll: %s", strerror(errno));
			backup_run_cancel(&run, "internal error in the event loop");
			continue;
		}
		if (rc <= 0)
			continue;
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
					backup_run_cancel(&run, si.ssi_signo == SIGTERM ?
							  "stopped by SIGTERM" : "stopped by SIGINT");
			}
			reap_children(&run);
		}
		backup_run_handle_fds(&run, fds + 1, n - 1);
	}
	r = backup_run_exit_code(&run);
	/* VmHWM, not ru_maxrss: the latter inherits the high-water mark of
	 * whatever process exec'd us. */
	FILE *status = fopen("/proc/self/status", "re");
	char line[128];
	while (status != NULL && fgets(line, sizeof(line), status) != NULL) {
		long kib;
		if (sscanf(line, "VmHWM: %ld kB", &kib) == 1)
			msg_debug("mongo-azure-backupd: peak RSS %ld KiB", kib);
	}
	if (status != NULL)
		fclose(status);
out:
	reap_children(&run);
	backup_run_free(&run);
	close(sfd);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'f' },
		{ "test", no_argument, NULL, 't' },
		{ "once", no_argument, NULL, 'O' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = MAB_DEFAULT_CONFIG;
	bool test_only = false, once = false, foreground = false;
	struct mab_config cfg;
	int opt, problems, r;

	while ((opt = getopt_long(argc, argv, "c:fth", long_opts, NULL)) != -1) {
		switch (opt) {
		case 'c': conf_path = optarg; break;
		case 'f': foreground = true; break;
		case 't': test_only = true; break;
		case 'O': once = true; break;
		case 'V': printf("mongo-azure-backupd %s\n", PACKAGE_VERSION); return EXIT_OK;
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

	if (test_only) {
		problems = config_load(conf_path, &cfg, print_problem, NULL);
		if (problems == 0)
			problems = check_secrets(&cfg);
		if (problems == 0)
			printf("%s: configuration OK\n", conf_path);
		config_free(&cfg);
		return problems == 0 ? EXIT_OK : EXIT_USAGE;
	}

	log_open("mongo-azure-backupd", LOG_TARGET_STDERR, LOG_INFO);
	problems = config_load(conf_path, &cfg, log_problem, NULL);
	if (problems != 0) {
		msg_error("%s: %d configuration problem%s; nothing was done", conf_path,
			  problems, problems == 1 ? "" : "s");
		config_free(&cfg);
		return EXIT_USAGE;
	}
	enum log_target target = cfg.log_target >= 0 ? (enum log_target)cfg.log_target :
				 (once || foreground) ? LOG_TARGET_STDERR : LOG_TARGET_SYSLOG;
	log_open("mongo-azure-backupd", target, cfg.log_level);

	if (!once) {
		struct mab_config *owned = malloc(sizeof(*owned));
		if (owned == NULL) {
			msg_error("out of memory");
			config_free(&cfg);
			return EXIT_FAILED;
		}
		*owned = cfg;
		return daemon_main(conf_path, owned, foreground);
	}
	/* The parent of SIGPIPE-sensitive children must not die of a closed
	 * status socket; MSG_NOSIGNAL covers sends, this covers writes. */
	signal(SIGPIPE, SIG_IGN);
	r = run_once(&cfg);
	config_free(&cfg);
	return r;
}
