/* The `mqim` command's options (cli.h): one table for the flags, their
 * mosquitto_pub/_sub spellings, the environment, the config file and the
 * usage text, so none of them can forget an option. */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mqim/version.h"

typedef struct cli_option {
    const char *name;  /* --name, also the config file's key */
    const char *alias; /* mosquitto's spelling (short or long), or NULL */
    const char *env;   /* environment variable, or NULL */
    size_t field;      /* offsetof(cli_options_t, ...) */
    const char *arg;   /* the value's name; NULL: a switch ("yes" when given) */
    const char *help;
} cli_option_t;

#define F(x) offsetof(cli_options_t, x)
static const cli_option_t options[] = {
    { "host", "-h", "MQIM_HOST", F(host), "HOST", "the broker (127.0.0.1); a name or an IPv4/IPv6 address" },
    { "port", "-p", "MQIM_PORT", F(port), "PORT", "the broker's port (1883; 8883 with TLS)" },
    { "user", "-u", "MQIM_USER", F(user), "USER", "who I am (required)" },
    { "password", "-P", "MQIM_PASSWORD", F(password), "PASSWORD", "the broker password" },
    { "password-file", NULL, "MQIM_PASSWORD_FILE", F(password_file), "FILE", "the password: FILE's first line" },
    { "device", "-i", "MQIM_DEVICE", F(device), "DEVICE",
      "this device's name (cli); the MQTT client id is USER.DEVICE" },
    { "state-dir", NULL, NULL, F(state_dir), "DIR",
      "outbox and state ($XDG_STATE_HOME/mqim/USER.DEVICE)" },
    { "timeout", NULL, NULL, F(timeout), "MS", "how long to wait for acks, answers, a link (10000)" },
    { "wait", "-W", NULL, F(wait_s), "SECONDS", "the same in seconds (as mosquitto_sub -W)" },
    { "config", "-c", NULL, F(config), "FILE", "the config file (~/.config/mqim/config)" },
    { "tls-ca", "--cafile", "MQIM_TLS_CA", F(tls_ca), "FILE",
      "TLS: verify the broker against this CA and its host name" },
    { "tls-server-name", NULL, NULL, F(tls_server_name), "NAME", "TLS: verify this name instead of HOST" },
    { "tls-cert", "--cert", NULL, F(tls_cert), "FILE", "TLS: a client certificate" },
    { "tls-key", "--key", NULL, F(tls_key), "FILE", "TLS: its private key" },
    { "tls-psk", "--psk", "MQIM_TLS_PSK", F(tls_psk), "HEX", "TLS with a pre-shared key instead of certificates" },
    { "tls-psk-identity", "--psk-identity", NULL, F(tls_psk_identity), "ID", "the PSK's identity (USER)" },
    { "e2e", NULL, "MQIM_E2E", F(e2e), NULL, "encrypt end to end what send and chat send" },
    { "refuse-changed-keys", NULL, NULL, F(refuse_changed_keys), NULL,
      "refuse a device key that changed instead of warning" },
    { "keep-trying", NULL, "MQIM_KEEP_TRYING", F(keep_trying), NULL,
      "retry a refused login or TLS failure until the timeout" },
    { "json", NULL, "MQIM_JSON", F(json), NULL, "output for scripts: one JSON object per line" },
};
#undef F

static const char **field(cli_options_t *o, const cli_option_t *opt)
{
    return (const char **)(void *)((char *)o + opt->field);
}

static const cli_option_t *find(const char *arg)
{
    for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++) {
        const cli_option_t *op = &options[k];
        if ((strncmp(arg, "--", 2) == 0 && strcmp(arg + 2, op->name) == 0) ||
            (op->alias != NULL && strcmp(arg, op->alias) == 0)) {
            return op;
        }
    }
    return NULL;
}

/* The flags before the command: 0 with *next at the command;
 * CLI_OPT_HELP / CLI_OPT_VERSION; MQIM_EXIT_USAGE (printed). */
int cli_options_parse(cli_options_t *o, int argc, char **argv, int *next)
{
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const cli_option_t *op;
        if (strcmp(argv[i], "--help") == 0) {
            return CLI_OPT_HELP;
        }
        if (strcmp(argv[i], "--version") == 0) {
            return CLI_OPT_VERSION;
        }
        op = find(argv[i]);
        if (op == NULL) {
            fprintf(stderr, "mqim: unknown option %s (mqim --help lists them)\n", argv[i]);
            return MQIM_EXIT_USAGE;
        }
        if (op->arg == NULL) {
            *field(o, op) = "yes";
        } else if (i + 1 >= argc) {
            fprintf(stderr, "mqim: %s needs a value (%s)%s\n", argv[i], op->arg,
                    strcmp(argv[i], "-h") == 0 ? "; -h is the host, as in mosquitto_pub: help is --help" : "");
            return MQIM_EXIT_USAGE;
        } else {
            *field(o, op) = argv[++i];
        }
    }
    for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++) {
        if (options[k].env != NULL && *field(o, &options[k]) == NULL) {
            *field(o, &options[k]) = getenv(options[k].env);
        }
    }
    *next = i;
    return 0;
}

/* The config file: "key value" lines, '#' comments, keys as the flags
 * without "--". Its text lives in conf (the caller's) as long as the run. */
static int load_config(cli_options_t *o, const char *path, bool required, char *conf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;
    char *line, *save = NULL;
    if (f == NULL) {
        if (required) {
            fprintf(stderr, "mqim: cannot read %s: %s\n", path, strerror(errno));
        }
        return required ? MQIM_EXIT_USAGE : 0;
    }
    n = fread(conf, 1, cap - 1u, f);
    fclose(f);
    conf[n] = '\0';
    for (line = strtok_r(conf, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
        char *key = line + strspn(line, " \t"), *val;
        const cli_option_t *op;
        char flag[64];
        if (*key == '#' || *key == '\0') {
            continue;
        }
        val = key + strcspn(key, " \t");
        if (*val != '\0') {
            *val++ = '\0';
        }
        val += strspn(val, " \t");
        val[strcspn(val, "\r")] = '\0';
        snprintf(flag, sizeof(flag), "--%s", key);
        op = find(flag);
        if (op == NULL || strcmp(key, "config") == 0) {
            fprintf(stderr, "mqim: %s: unknown key '%s'\n", path, key);
            return MQIM_EXIT_USAGE;
        }
        if (*field(o, op) == NULL) {
            *field(o, op) = val;
        }
    }
    return 0;
}

static bool yes(const char *v)
{
    return v != NULL && (strcmp(v, "yes") == 0 || strcmp(v, "1") == 0);
}

static int read_password(cli_t *c)
{
    FILE *f;
    if (c->opt.password != NULL || c->opt.password_file == NULL) {
        return 0;
    }
    f = fopen(c->opt.password_file, "r");
    if (f == NULL || fgets(c->password, sizeof(c->password), f) == NULL) {
        fprintf(stderr, "mqim: cannot read a password from %s: %s\n", c->opt.password_file,
                f == NULL ? strerror(errno) : "empty file");
        if (f != NULL) {
            fclose(f);
        }
        return MQIM_EXIT_USAGE;
    }
    fclose(f);
    c->password[strcspn(c->password, "\r\n")] = '\0';
    c->opt.password = c->password;
    return 0;
}

/* After parsing: the config file, defaults, the password file, the state
 * directory's name. 0 or an exit code (printed). */
int cli_options_finish(cli_t *c)
{
    char path[1024];
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int rc;
    if (c->opt.config != NULL) {
        rc = load_config(&c->opt, c->opt.config, true, c->conf_text, sizeof(c->conf_text));
    } else {
        snprintf(path, sizeof(path), "%s%s/mqim/config",
                 xdg != NULL && xdg[0] != '\0' ? xdg : (home != NULL ? home : "."),
                 xdg != NULL && xdg[0] != '\0' ? "" : "/.config");
        rc = load_config(&c->opt, path, false, c->conf_text, sizeof(c->conf_text));
    }
    if (rc != 0) {
        return rc;
    }
    if (c->opt.user == NULL) {
        fprintf(stderr, "mqim: who am I? give --user (-u), MQIM_USER or \"user\" in the config file\n");
        return MQIM_EXIT_USAGE;
    }
    c->opt.host = c->opt.host != NULL ? c->opt.host : "127.0.0.1";
    c->opt.device = c->opt.device != NULL ? c->opt.device : "cli";
    c->timeout_ms = c->opt.timeout != NULL  ? (uint32_t)strtoul(c->opt.timeout, NULL, 10)
                    : c->opt.wait_s != NULL ? (uint32_t)strtoul(c->opt.wait_s, NULL, 10) * 1000u
                                            : 10000u;
    c->e2e = yes(c->opt.e2e);
    c->refuse_changed = yes(c->opt.refuse_changed_keys);
    c->keep_trying = yes(c->opt.keep_trying);
    c->json = yes(c->opt.json);
    c->tty = isatty(1) != 0;
    if (c->opt.tls_psk != NULL && c->opt.tls_psk_identity == NULL) {
        c->opt.tls_psk_identity = c->opt.user; /* the usual choice with use_identity_as_username */
    }
    if (c->opt.state_dir != NULL) {
        snprintf(c->state_dir, sizeof(c->state_dir), "%s", c->opt.state_dir);
    } else if ((xdg = getenv("XDG_STATE_HOME")) != NULL && xdg[0] != '\0') {
        snprintf(c->state_dir, sizeof(c->state_dir), "%s/mqim/%s.%s", xdg, c->opt.user, c->opt.device);
    } else {
        snprintf(c->state_dir, sizeof(c->state_dir), "%s/.local/state/mqim/%s.%s", home != NULL ? home : ".",
                 c->opt.user, c->opt.device);
    }
    return read_password(c);
}

void cli_usage(FILE *f, const cli_command_t *cmds, size_t n)
{
    fprintf(f, "usage: mqim [OPTIONS] COMMAND [ARGS]     (mqim COMMAND --help: one command)\n\ncommands:\n");
    for (size_t k = 0; k < n; k++) {
        fprintf(f, "  %s %s\n", cmds[k].name, cmds[k].usage);
    }
    fprintf(f, "\noptions (flag, mosquitto's spelling, environment; a config file takes the\n"
               "same keys without \"--\"):\n");
    for (size_t k = 0; k < sizeof(options) / sizeof(options[0]); k++) {
        const cli_option_t *op = &options[k];
        char left[64];
        snprintf(left, sizeof(left), "--%s%s%s%s%s", op->name, op->arg != NULL ? " " : "",
                 op->arg != NULL ? op->arg : "", op->alias != NULL ? ", " : "", op->alias != NULL ? op->alias : "");
        fprintf(f, "  %-34s %s%s%s%s\n", left, op->help, op->env != NULL ? " [" : "", op->env != NULL ? op->env : "",
                op->env != NULL ? "]" : "");
    }
    fprintf(f, "  %-34s %s\n  %-34s %s\n", "--help", "this text", "--version", "the version");
    fprintf(f, "\n-h is the host, as in mosquitto_pub; help is --help.\n"
               "exit status: 0 done, 1 local failure, 2 usage, 3 queued (not acked yet), 4 rejected,\n"
               "5 not authorised, 6 timed out, 7-10 connection refused (CONNACK 4, 2, 3, 1),\n"
               "11 broker unreachable, 12 TLS verification failed, 13 TLS handshake failed\n"
               "(man mqim).\n");
}

void cli_command_help(FILE *f, const cli_command_t *cmd)
{
    fprintf(f, "usage: mqim [OPTIONS] %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->help);
}
