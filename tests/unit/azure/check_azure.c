/* check_azure.c - runs the Azure client's unit suites. */
#include "config.h"

#include <stdlib.h>

#include "azure_suites.h"

int main(void)
{
	static const char *const proxies[] = {
		"http_proxy", "https_proxy", "all_proxy", "HTTPS_PROXY", "ALL_PROXY",
	};
	SRunner *sr;
	int failed;

	/* The HTTP tests talk to 127.0.0.1: a CI proxy must not get in between. */
	for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
		unsetenv(proxies[i]);
	sr = srunner_create(azure_sign_suite());
	srunner_add_suite(sr, azure_connstr_suite());
	srunner_add_suite(sr, azure_retry_suite());
	srunner_add_suite(sr, azure_xml_suite());
	srunner_add_suite(sr, azure_block_suite());
	srunner_add_suite(sr, azure_http_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
