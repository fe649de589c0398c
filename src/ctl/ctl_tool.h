/* ctl_tool.h - what the files of mongo-azure-backupctl share: the tool's
 * state (struct ctl), its exit codes, and the helpers of ctl_daemon.c
 * (configuration, the control socket, the JSON replies, formatting) that
 * the commands (ctl_status.c, ctl_run.c, ctl_next_runs.c, ctl_prune.c)
 * and the command line (mongo-azure-backupctl.c) use.  The storage-side
 * commands (list, verify, restore) are in ctl_commands.h.
 */
#ifndef MAB_CTL_TOOL_H
#define MAB_CTL_TOOL_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "control_client.h"
#include "mab_config.h"

#define PROG "mongo-azure-backupctl"

enum exit_code {
	EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_UNREACHABLE = 3,
	EXIT_FORBIDDEN = 4,
};

#define REQUEST_TIMEOUT_MS 10000
#define WAIT_POLL_MS 500
/* Consecutive ERROR 500 replies (e.g. "busy") tolerated while waiting. */
#define WAIT_MAX_ERRORS 20

struct ctl {
	const char *conf_path;
	bool conf_explicit;
	const char *socket;		/* -s, or the configuration's */
	struct mab_config cfg;
	bool cfg_loaded;
	int cfg_problems;
};

/* The progress bars of status and run --wait, in cells. */
#define BAR_MAX 30
#define BAR_MIN 5
/* What a bar adds besides its cells: "[] 100%  ". */
#define BAR_EXTRA 9

struct next_args {
	const char *tz, *from, *count, *expr;
};

/* ctl_daemon.c */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void add(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int ask(const struct ctl *c, const char *command, struct control_reply *reply);
const char *duration_text(long long s, char *buf, size_t len);
size_t each_object(const bson_t *doc, const char *key,
			  void (*fn)(const bson_t *item, void *arg), void *arg);
bool j_bool(const bson_t *doc, const char *key);
bool j_int(const bson_t *doc, const char *key, long long *out);
bool j_num(const bson_t *doc, const char *key, double *out);
const char *j_str(const bson_t *doc, const char *key);
bool j_sub(const bson_t *doc, const char *key, bson_t *out);
int load_config(struct ctl *c);
bson_t *parse_json(const struct control_reply *reply);
void print_body(const struct control_reply *reply);
int report_error_reply(const char *command, const struct control_reply *reply);
int resolve_socket(struct ctl *c);
void trim_right(char *s);
const char *utc_text(const char *iso, char *buf, size_t len);

/* ctl_status.c */
int tool_cmd_cancel(struct ctl *c);
int tool_cmd_metrics(struct ctl *c);
int tool_cmd_status(struct ctl *c, bool json);
void count_done(const bson_t *coll, void *arg);
void current_line(const bson_t *coll, int bar, char *line, size_t len);
void print_last_run(const bson_t *run);

/* ctl_run.c */
int tool_cmd_run(struct ctl *c, bool wait);

/* ctl_next_runs.c */
int tool_cmd_next_runs(struct ctl *c, struct next_args *a);

/* ctl_prune.c */
int tool_cmd_prune(const struct ctl *c, bool dry_run);

#endif
