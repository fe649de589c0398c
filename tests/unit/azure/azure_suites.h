/* azure_suites.h - the check suites of check_azure, and a canned-response
 * HTTP server for driving the real client without Azure. */
#ifndef MAB_AZURE_SUITES_H
#define MAB_AZURE_SUITES_H

#include <check.h>
#include <stddef.h>
#include <sys/types.h>

Suite *azure_sign_suite(void);
Suite *azure_connstr_suite(void);
Suite *azure_retry_suite(void);
Suite *azure_xml_suite(void);
Suite *azure_block_suite(void);
Suite *azure_http_suite(void);

/* The Azurite account key, used by the signing vectors. */
#define DEV_KEY "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

struct fake_server {
	pid_t pid;
	int port;
	int log_fd;          /* request heads, each ending in "\n--\n" */
};

/* Serves responses[0..n-1], one per connection, in order. */
void fake_server_start(struct fake_server *fs, const char *const *responses, size_t n);
/* Waits for the server and returns everything it logged (malloc'd). */
char *fake_server_finish(struct fake_server *fs);
/* Number of times needle occurs in haystack. */
int count_substr(const char *haystack, const char *needle);

#endif
