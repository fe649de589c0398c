/* ctl_common.h - what list, verify and restore share: the configuration
 * and Azure client, finding the set an operator named, and text for a
 * terminal.
 */
#ifndef MAB_CTL_COMMON_H
#define MAB_CTL_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "azure_blob.h"
#include "backup_set.h"
#include "mab_config.h"

#define CTL_PROG "mongo-azure-backupctl"

enum ctl_exit { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

struct ctl_store {
	const char *conf_path;
	bool conf_explicit;
	bool conf_read;               /* a file was read (not the defaults) */
	struct mab_config cfg;
	bool have_cfg;
	struct azure_client *client;
};

/* Reads the configuration (the default file may be absent: then the
 * defaults and AZURE_STORAGE_CONNECTION_STRING) and makes the client.
 * CTL_OK, or CTL_USAGE after saying why. */
int ctl_store_open(struct ctl_store *st, const char *conf_path, bool conf_explicit);
void ctl_store_close(struct ctl_store *st);

/* Lists the container into l and finds `name` in it (see sets_resolve);
 * the chosen set is loaded, and with load_all every set is.  CTL_OK with
 * *idx set, or the exit code after saying why. */
int ctl_pick_set(struct ctl_store *st, const char *name, bool only_complete, bool load_all,
		 struct set_list *l, long *idx);

void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* After getopt's own message. */
int ctl_usage_hint(void);

/* Text from storage or a server, made safe for a terminal. */
const char *ctl_clean(const char *s, char *buf, size_t len);
/* 1234567 -> "1.2 MB". */
const char *ctl_bytes(uint64_t n, char *buf, size_t len);
/* "2026-11-27T03:00:00Z" -> "2026-11-27 03:00:00"; "-" for NULL. */
const char *ctl_when(const char *iso, char *buf, size_t len);
/* Terminal width of stdout when it is a terminal, else 0. */
int ctl_tty_width(void);

#endif
