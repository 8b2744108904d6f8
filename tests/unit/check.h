/*
 * A minimal test harness for the core's unit tests. One executable per module; inside it, named
 * cases that can each run alone:
 *
 *	TEST_CASE(login_twice_keeps_id)
 *	{
 *		CHECK_STR("10", ...);
 *	}
 *
 *	CHECK_MAIN("test_requests")
 *
 * TEST_CASE registers the case before main runs (a constructor adds it to a list kept in source
 * order, so registration does not depend on the order constructors happen to run in). The main
 * that CHECK_MAIN defines runs every case with no argument, only the named cases when given names,
 * and prints the names with --list; an unknown name exits 2 and lists the cases. CMakeLists.txt
 * reads the TEST_CASE lines to register each case with ctest as unit/<module>/<case>, so a case
 * header must stay on one line of its own.
 *
 * Each check that fails prints where it is, which case it was in, what was expected and what
 * came. The last line is always "NAME: N passed, N failed", counting checks; the process exits
 * non-zero if any check failed.
 *
 * Cases in one run share the process and any file-scope fixture, so each case must set up what
 * it uses; CHECK_MAIN_FIXTURE runs a set-up and a tear-down around every case for fixtures that
 * the cases cannot reset themselves (a fresh temporary directory, say).
 */
#ifndef CHAT_TEST_CHECK_H
#define CHAT_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures;
static int check_count;
static const char *check_case_name = "(no case)";

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		check_count++;                                                                     \
		if (!(cond)) {                                                                     \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: [%s] expected %s\n", __FILE__, __LINE__,           \
				check_case_name, #cond);                                           \
		}                                                                                  \
	} while (0)

#define CHECK_INT(expected, actual)                                                                \
	do {                                                                                       \
		long long e_ = (long long)(expected), a_ = (long long)(actual);                    \
		check_count++;                                                                     \
		if (e_ != a_) {                                                                    \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: [%s] %s: expected %lld, got %lld\n", __FILE__,     \
				__LINE__, check_case_name, #actual, e_, a_);                       \
		}                                                                                  \
	} while (0)

#define CHECK_STR(expected, actual)                                                                \
	do {                                                                                       \
		const char *e_ = (expected), *a_ = (actual);                                       \
		check_count++;                                                                     \
		if (a_ == NULL || strcmp(e_, a_) != 0) {                                           \
			check_failures++;                                                          \
			fprintf(stderr, "%s:%d: [%s] %s: expected \"%s\", got \"%s\"\n", __FILE__, \
				__LINE__, check_case_name, #actual, e_, a_ ? a_ : "(null)");       \
		}                                                                                  \
	} while (0)

struct check_case {
	const char *name;
	void (*run)(void);
	int line; /* where TEST_CASE stands: the list is kept in this order */
	struct check_case *next;
};

static struct check_case *check_cases;

static inline void check_register(struct check_case *c)
{
	struct check_case **at = &check_cases;
	while (*at != NULL && (*at)->line < c->line) {
		at = &(*at)->next;
	}
	c->next = *at;
	*at = c;
}

/*
 * Declares the case `name` (snake_case; it becomes part of the ctest name) and registers it.
 * Two cases with one name do not compile.
 */
#define TEST_CASE(name)                                                                            \
	static void check_case_##name(void);                                                       \
	__attribute__((constructor)) static void check_register_##name(void)                       \
	{                                                                                          \
		static struct check_case c = { #name, check_case_##name, __LINE__, NULL };         \
		check_register(&c);                                                                \
	}                                                                                          \
	static void check_case_##name(void)

static inline struct check_case *check_find(const char *name)
{
	for (struct check_case *c = check_cases; c != NULL; c = c->next) {
		if (strcmp(c->name, name) == 0) {
			return c;
		}
	}
	return NULL;
}

static inline void check_run(struct check_case *c, int (*setup)(void), void (*teardown)(void))
{
	int count = check_count, failures = check_failures;
	check_case_name = c->name;
	if (setup != NULL && setup() != 0) {
		check_count++;
		check_failures++;
		fprintf(stderr, "[%s] the set-up failed; the case did not run\n", c->name);
	} else {
		c->run();
		if (teardown != NULL) {
			teardown();
		}
	}
	if (check_failures > failures) {
		fprintf(stderr, "FAIL %s: %d of %d checks failed\n", c->name,
			check_failures - failures, check_count - count);
	}
	check_case_name = "(no case)";
}

static inline int check_finish(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, check_count - check_failures, check_failures);
	return check_failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/*
 * With no argument, runs every case in source order; with names, runs those cases in the order
 * given; with --list, prints the names one a line. An unknown name or option exits 2.
 */
static inline int check_main(const char *name, int argc, char **argv, int (*setup)(void),
	void (*teardown)(void))
{
	if (argc == 2 && strcmp(argv[1], "--list") == 0) {
		for (struct check_case *c = check_cases; c != NULL; c = c->next) {
			printf("%s\n", c->name);
		}
		return EXIT_SUCCESS;
	}
	for (int i = 1; i < argc; i++) {
		if (check_find(argv[i]) == NULL) {
			fprintf(stderr,
				"%s: no case \"%s\". Usage: %s [--list | CASE...]. Cases:\n", name,
				argv[i], argv[0]);
			for (struct check_case *c = check_cases; c != NULL; c = c->next) {
				fprintf(stderr, "  %s\n", c->name);
			}
			return 2;
		}
	}
	if (argc == 1) {
		for (struct check_case *c = check_cases; c != NULL; c = c->next) {
			check_run(c, setup, teardown);
		}
	} else {
		for (int i = 1; i < argc; i++) {
			check_run(check_find(argv[i]), setup, teardown);
		}
	}
	return check_finish(name);
}

/* The executable's main; `name` starts the summary line. */
#define CHECK_MAIN(name) CHECK_MAIN_FIXTURE(name, NULL, NULL)

/* The same, with set-up (returns 0 on success) and tear-down functions run around every case. */
#define CHECK_MAIN_FIXTURE(name, setup, teardown)                                                  \
	int main(int argc, char **argv)                                                            \
	{                                                                                          \
		return check_main(name, argc, argv, setup, teardown);                              \
	}

#endif
