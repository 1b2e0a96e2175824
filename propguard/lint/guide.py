"""The documentation of ``propguard lint``, ``explain`` and ``matrix``, shipped with the package.

The same text as docs/lint.md in the source tree (a test keeps them equal);
``propguard lint --list-codes`` prints its table of codes.
"""

TEXT = r"""# `propguard lint`, `explain` and `matrix`

```text
propguard lint [--format text|json|sarif] [--fail-on error|warning|info|never]
               [--rules-format roles|policies|auto] [--policy-file F]
               [--policy-dirs D,...] [--policy-namespaces NS,...] [--policy-namespace NS]...
               [--known-roles a,b] [--service-role-mode strict|union] [--service-like-roles a,b]
               [--ignore CODES] [--no-os-glance-section] [-o FILE] [-q] FILE|DIR...
propguard lint --list-codes
propguard lint [--rules-file F] [--service-token-roles R,..] [--protect-core-attributes A,..]
               [--inject-properties N:V,..] [--inject-ignore-roles R,..] [--inject-service-roles R,..]
               [-O NAME=VALUE]...
propguard check --paste-ini glance-api-paste.ini --config-file glance-api.conf [--config-file ...]
               [--glance-config-file F] [--paste-filter N] [--format ...] [--fail-on ...]
               [--known-roles a,b] [--ignore CODES] [-o FILE] [-q]
propguard explain --rules FILE [--policy-file F] --roles a,b [--service-roles s] PROPERTY [OP]
propguard matrix  --rules FILE --roles-sets "member;admin;member+service:nova" [--format text|markdown|html|json]
# every command also takes --name-collation C and --config-file F/--paste-ini F/--paste-filter N
```

`--rules-format`, `--policy-file`, `--policy-dirs`, `--policy-namespaces`,
`--service-role-mode`, `--name-collation` and `--no-os-glance-section` are the
filter's `rule_format`, `policy_file`, `policy_dirs`, `policy_namespaces`,
`service_role_mode`, `name_collation` and `os_glance_section`: give lint the filter's values and
it reads exactly what the filter reads.

Every other filter option has a lint option too: `--rules-file` (read exactly
as the filter reads `rules_file`: a directory there is PG101, the loader's
error, never searched as a directory argument is), `--service-token-roles`,
`--protect-core-attributes`, `--inject-properties`, `--inject-ignore-roles`,
`--inject-service-roles`, and `-O NAME=VALUE` for any `[propguard]` option
(the rest change nothing lint reads: request handling, caches, relations).
Each value is converted by the option's own oslo.config type and checked as
the filter checks it at start; a bad value or an unknown name (with "did you
mean") exits 2, as the filter would not start. A test fails when a new filter
option has neither a flag nor a place in that list. With
`--config-file`/`--paste-ini` the deployed values are taken instead of the
rules flags, and `-O` and the flags above are applied on top.

## Known roles (PG208) and unreachable sections (PG202)

A role no known source defines is an error, PG208, at every occurrence (a
right given to a role nobody has reaches nobody; `membr` for `member` takes a
right away silently). Known roles, with no option needed: Keystone's default
roles (`keystone-manage bootstrap` in Keystone 30 creates `admin`, `member`,
`reader`, `manager`, `service`), every `role:` of the policy files the
deployment reads (policy file, its `policy_dirs`, policy files given as
arguments) and of the registered defaults of `policy_namespaces`, and the
roles the deployment's options name (`service_token_roles`,
`inject_ignore_roles`, `inject_service_roles`, `relations_service_roles`).
`--known-roles a,b` adds more: a deployment's own roles (`billing`), or
Glance's legacy `_member_` (its sample rules file uses it; Keystone 30 no
longer creates it). A role in a policy file is known by being there, so a typo
inside a policy file is not caught this way.

A section that can never match, PG202, is an error when the sections that
take its names give different rights (its own are never applied: a section
meant to hide billing data below a broader one hides nothing), and a warning
when they give the same rights.

## `propguard check`: a deployment

`propguard check` takes glance-api's paste file and config files (or
`propguard serve`'s serve.ini and `--config-file`) and reports, each with file
and line, then lints the rules and policy files exactly as the deployment
configures them (`rules_file`, `rule_format`, `policy_file`, ... as the
filter resolves them; the lint findings follow). Formats, `--fail-on` and exit
codes are lint's (0 clean, 1 findings at or above `--fail-on`, 2 a file that
does not exist).

| code | what |
|---|---|
| PG401 | a pipeline that authenticates (keystonemiddleware `authtoken`, or propguard's `jwt`) has no propguard; or no `[filter:...]` builds propguard at all |
| PG402 | propguard comes before the auth layer in a pipeline (it would see no validated identity) |
| PG403 | the pipeline glance-api uses (`[paste_deploy] flavor`) has propguard but no auth layer (unless `trust_identity_headers`) |
| PG404 | Glance's own `property_protection_file` is set (Glance then drops unreadable properties from updates: data loss) |
| PG405 | `image_property_quota` is not -1 (Glance's default is 128) while propguard counts (`property_quota` not -1): Glance's 413 is a counting oracle |
| PG406 | an explicit `name_collation` disagrees with `[database] connection` (binary against MySQL/MariaDB, or a folding collation against PostgreSQL/SQLite) |
| PG407 | `limit_param_default`/`api_limit_max` differ from Glance's (defaults 25 and 1000) |
| PG408 | an unknown option, with "did you mean": in `[propguard]`, propguard's paste section, `[propguard_jwt]`/`[propguard_jwt:<issuer>]` and the jwt paste section, `[propguard_notifications]`, `[propguard_notify_filter]`, the proxy app's section |
| PG409 | a value the filter refuses at start, or no `rules_file`; `enforce = false` in `[propguard]` beside the propguard notification driver (which then refuses to load) |
| PG410 | an option that points at nothing: a `relations_*` option without `relations_connection`, a `relations_outbox` whose directory does not exist, `[propguard_notifications]` without `propguard` in `[oslo_messaging_notifications] driver`, a `[propguard_jwt:<name>]` section whose name `issuers` does not list |

The Glance options (PG403-PG407) are read from `--config-file`; for a paste
file whose app is `propguard serve`'s proxy, only from `--glance-config-file`
(glance-api.conf, when the operator has it), since propguard.conf holds none.

What `check` does not check: that these are the files the running services
read; Keystone's actual roles; the database's actual collation; the message
bus, Glance's `policy.yaml` for API access, TLS, and anything only a request
would show. `oslo-config-validator --namespace propguard --config-file
glance-api.conf` validates every propguard group too (and `--namespace
glance.api` Glance's own options); the filter, `propguard serve`, the proxy
app and the JWT filter refuse an unknown option at start as well.

## What lint reads

Lint is never cleaner than the filter is strict: rules files go through the
filter's own parser and loader, policy files through the filter's own reader
(`propguard/rules/policy_source.py`), so whatever the filter refuses is an
error here, with the same code, file, line and column. A differential test
checks this over a few thousand generated and mutated rules files, policy
files and `policy.d` directories. A file that lints without errors loads in
the filter (with the same options).

* A `FILE` named `*.yaml`, `*.yml` or `*.json` is an oslo.policy file. It is
  read with the files of its `policy_dirs` (default `policy.d` beside it): as
  oslo.policy and the filter read them, every file in the directory whose name
  does not start with a dot, in name order (`20-override`, `30.YAML`, `x.bak`,
  `y~` and dangling links included), each overriding the earlier ones.
* Any other `FILE` is a rules file, read in the filter's default format,
  `roles`, unless `--rules-format` says otherwise. With `--rules-format auto`
  (only when asked; the summary then says `assumed by --rules-format auto`):
  roles when a value uses roles syntax (`a,b`, `a+b`,
  `service:x`) or names nothing; otherwise policies when a name is defined in
  the policy set (the policy file, its `policy_dirs`, the namespaces' registered
  defaults), when a policy file is given but cannot be loaded (its errors are
  then reported, never hidden by reading the file as roles), or when the file
  name says "polic"; roles otherwise. Give the filter's `rule_format` (or
  `--config-file`) to read it exactly as the filter is configured.
* A rules file and one policy file given together: the rules' names resolve in
  that policy file, as if it were `--policy-file`. With `--policy-file`, that
  policy file (and its `policy_dirs`) is linted as well.
* A directory: the rules files in it (INI files with create/read/update/delete
  keys, or named like `*protection*`/`*rules*`), its policy files with their
  `policy_dirs`, and, if it holds no policy file, its `policy.d` as a policy
  directory. With exactly one policy file there, the rules files use it as their
  policy file. Other files are skipped (the summary names them).
* A directory named like one of `--policy-dirs` (`policy.d`): every file in it
  not starting with a dot, as policy files.
* An argument that gives nothing to lint (an empty directory, a directory
  without rules or policy files) is an error: exit 2, naming it.

A file that cannot be read (missing, a directory, not a regular file, not
UTF-8), YAML with NUL or other control characters, a section pattern Python's
`re` cannot compile (`[a{4294967296}]`, groups nested 1500 deep) and a policy
nested more than 100 levels (`rule:` references and and/or/not) are findings
with their position, in lint and in the filter, never a crash.

What the filter's loader refuses in a policy set it reads: a file it cannot
read or parse (PG118); for the names a rules file uses, and every rule they
reach: an undefined name or `rule:` reference (PG111, with "did you mean"), a
check string oslo.policy cannot parse or evaluate (PG303), a cycle (PG305), a
nesting deeper than 100 (PG118). Lint reports these for every rule of a policy
file, used or not.

When names of a policies-format file are undefined and no policy file was
given, the hint says to pass the filter's `policy_file` with `--policy-file`,
naming a `policy.yaml` that lies beside the rules file.

## Property names the database equates (`--name-collation`)

On MySQL/MariaDB Glance's database compares property names by a collation
that equates case, accents and trailing spaces (`name_collation`, see
docs/filter.md, "MySQL/MariaDB"). The filter then decides every name as its folded spelling:
`Licence_x` is decided as `licence_x`. `lint`, `explain` and `matrix` take the
same option (`--name-collation`, or `name_collation` from `--config-file` /
`--paste-ini`) and decide exactly as the filter does:

* A section, or a top-level alternative of one, whose pattern matches no
  folded name is a load error in the filter and PG119 in lint, same code,
  file and line: `[^Licence_]` never applies there, and a later `[.*]` would
  decide `Licence_…` names (fail open). The hint gives the folded spelling to
  write, checked to take the folded names the section was written for.
  propguard does not fold patterns itself: a folded character class
  (`[^A-Z]` is not `[^a-z]` of the folded names), `(?i)` (case but not
  accents or trailing spaces), `\S`/`\W`, alternation mixing spellings and
  anchors next to trailing spaces (`x $` never matches a PAD SPACE key) would
  silently mean something the operator never wrote.
* The check is exact for `utf8mb3_general_ci`/`utf8mb4_general_ci` (their
  folded names are exactly the strings over the characters the fold keeps,
  not ending in a space). For the UCA collations and `mysql_any` it is sound
  (a refused section never matches a folded name: e.g. `[^password]` under
  `mysql_any`, which folds `ss` to `s`) but may let pass a section that only
  names the fold cannot produce match. A pattern the automata cannot model
  (look-arounds, inline flags, back-references) that no example proves alive
  is not refused.
* `explain` shows the folded spelling it decided (`decided as 'licence_a'`);
  `matrix` shows, for each section, a folded name the filter routes there, and
  a section that no folded name reaches as unreachable.
* `auto` (the filter's default) is resolved as the filter inside glance-api
  resolves it, from the `[database] connection` of `--config-file`
  (MySQL/MariaDB: `utf8mb3_general_ci`; SQLite/PostgreSQL: `binary`). Without
  a connection the tools use `binary` and say so on stderr: in front of
  MySQL/MariaDB, or for `propguard serve` (which refuses to start without
  an explicit `name_collation`), pass the `--name-collation` the deployment
  sets.

## Output

Text output is `file:line:col: CODE severity message`, with an indented
`hint:` line where one helps. `--format json` prints a list of objects with
`code`, `severity`, `file`, `line`, `column`, `message` and (where given)
`hint`. `--format sarif` prints SARIF 2.1.0 (validated against the OASIS
schema in the tests) for code-scanning UIs: files under the current directory
as URIs relative to `%SRCROOT%`, others as `file://` URIs, the
`<policy_namespaces>` pseudo-file as a logical location; each rule carries its
help text (this page ships with the package: `propguard lint --list-codes`
prints the table of codes below).

Every run ends with a one-line summary on stderr (`-q` drops it), e.g.
`propguard lint: 4 files (3 rules (policies/roles format), 1 policy): 0 errors,
0 warnings, 0 infos`.

Exit codes: `0` nothing at or above `--fail-on` (default `error`), `1`
findings at or above it, `2` usage error or an argument that gives nothing to
lint. `explain` and `matrix` exit `1` when the rules file does not load and
`2` when the policy file, a file of its `policy_dirs` or a namespace cannot be
used; either way the problems are printed as lint prints them (code, file,
line), never as a traceback. Errors in rules of the policy file that the rules
do not use are printed as notes; the answer is still given.

## Suppressing a finding

* `# propguard: disable=PG203,PG204` on its own comment line applies to the
  next non-comment line; above a `[section]` header it covers the whole
  section. (INI has no end-of-line comments; in YAML the comment may also end
  the line it applies to.)
* `# propguard: disable-file=PG210` anywhere covers the whole file.
* `disable=all` covers every code; `--ignore PG204` drops a code from a run.
* An error the filter's loader raises is never suppressed: the filter refuses
  the file whatever a comment says.

## How the order analysis works

Sections are matched like Glance does: `re.search`, first match wins, so the
language of `[p]` is "names containing a match of `p`" unless `p` is anchored.
The linter splits each pattern into top-level alternatives, takes `^`/`\A`
and `$`/`\Z` off, and answers "do these overlap?" and "does this one contain
that one?" exactly: a concrete name tried with the compiled regexes proves an
overlap or refutes a containment; conflicting literal prefixes of `^`-anchored
patterns prove disjointness; what is left goes to finite automata built by
`interegular` (product search, with a shortest readable witness). Every
witness quoted in a finding was checked against the real patterns. A pattern
interegular cannot model (back-references, some look-arounds, anchors inside
groups) gets `PG212` instead of a guess. Names are modelled without newlines.
The built-in first section `[^os_glance]` is part of the model
(`--no-os-glance-section` to leave it out, as the filter option does).

The analysis runs on every section whose pattern compiles, those refused for
their values included (they still take names in file order, so a section they
shadow is reported as PG202); a section whose pattern does not compile is left
out, and its PG104 says so. A file whose patterns are too large to model gets
one PG212 saying the analysis was skipped.

PG203 is reported only for real ambiguity: two sections with different rules
whose languages overlap while neither contains the other (a specific section
before a general one, e.g. `[x_foo_matcher]` before `[x_foo_*]`, is the normal
idiom and not reported), and not for sections already flagged PG204/PG205,
whose overlaps follow from being unanchored. The first (nearest) earlier
section is named.

## Codes

| code | severity | meaning | example | fix |
|---|---|---|---|---|
| PG101 | error | rules file cannot be read (missing, a directory, not a regular file, not UTF-8) | `lint missing.conf` | fix the path or encoding |
| PG102 | error | INI syntax: text before the first section, a line that is not `key = value` | `this is not an option` | one `op = value` per line |
| PG103 | error | a section is defined twice (configparser refuses the file) | `[^a$]` twice | merge them |
| PG104 | error | a section name is not a regex Python's `re` compiles (syntax, a repeat count above 4294967294, groups nested too deeply) | `[^[0-9)]` | fix the regex |
| PG105 | error | a section lacks one of create/read/update/delete | no `delete =` | write all four |
| PG106 | error | unknown or misspelt operation | `rade = admin` | `read = admin` |
| PG107 | error | `@` and `!` in one value | `create = @,!` | keep one |
| PG108 | error | empty role entry (Glance would match a caller with role `''`) | `admin,,member` | remove the stray comma |
| PG109 | error | `%` in a value (configparser interpolation; Glance answers 500) | `create = %(role)s` | literal names only |
| PG110 | error | more than one policy for an operation (policies format) | `create = a,b` | one policy; combine in the policy file |
| PG111 | error | a policy name or `rule:` reference no policy file or registered default defines (Glance silently allows everyone) | `create = no_such_policy` | define it, or fix the name |
| PG112 | error | `[DEFAULT]` silently fills operations into every section | `[DEFAULT] read = member` | write operations per section |
| PG113 | error | an operation given twice in a section | `read =` twice | keep one |
| PG114 | error | `@`/`!` mixed with role names (Glance: `@` wins / `!` wins silently) | `create = @,admin` | `@` alone or roles only |
| PG115 | error | malformed role entry or multi-line value | `create = admin member` | `admin,member` |
| PG116 | warning | a section in the reserved `os_glance` namespace (ignored, as Glance 32+) | `[os_glance_foo]` | remove it |
| PG117 | error | a policy namespace that is not installed (reported once, at `<policy_namespaces>`) | `--policy-namespace nosuch` | install it or fix the name |
| PG118 | error | a policy file that cannot be loaded (unreadable, not UTF-8, control characters, bad YAML, not a mapping), or a policy nested more than 100 levels | `"x": [oops` | fix the YAML; flatten the chain |
| PG119 | error | under a folding `name_collation` (MySQL/MariaDB), a section or top-level alternative that matches no name as the database folds it: the names it was written for fall through to a later section | `[^Licence_]` under `utf8mb3_general_ci` (`Licence_x` is decided as `licence_x`) | write the folded spelling the hint gives, e.g. `[^licence_]` |
| PG201 | warning | empty operation value: nobody is allowed | `create =` | write `!` to say so |
| PG202 | error | unreachable section: earlier sections take every name it matches (with a witness); an error when they give other rights, a warning when the same | `[^x_.*]` then `[^x_foo_.*]` | move it above, or remove it |
| PG203 | warning | two sections with different rules overlap, neither contains the other: order decides (with a witness) | `[^a.*]` then `[.*b$]`: `ab` | anchor so they do not overlap, or suppress to record intent |
| PG204 | warning | unanchored pattern matches names that merely contain it | `[spl_read_prop]` matches `xspl_read_prop_2` | `^spl_read_prop$` or `^spl_read_prop` |
| PG205 | warning | pattern reads like a shell glob (`_*` is "zero or more `_`") | `[x_foo_*]` | `^x_foo_.*` |
| PG206 | warning | blind write: a role may create/update/delete but not read | `create = admin,member`, `read = admin` | let writers read |
| PG207 | warning | a role written in different letter cases (or unlike its `--known-roles` spelling) | `Member` and `member` | one spelling |
| PG208 | error | a role no known source defines (Keystone's default roles, the policy files, the deployment's role options, `--known-roles`), at every occurrence (rules files and `role:` checks) | `membr` | fix the spelling, or add it to `--known-roles` |
| PG209 | warning | in `--service-role-mode union`, a service-like role (`service`, `nova`, ...) used as a user role: a service token alone satisfies it | `read = nova` | `service:nova` in strict mode, or pair with a user role |
| PG210 | warning | no catch-all: some names match no section and are denied to everyone, admin included (with a witness) | no `[.*]` | end with `[.*]` |
| PG211 | warning | pattern prone to catastrophic backtracking (nested/overlapping repetition) | `[^(a+)+$]` | `[^a+$]` |
| PG212 | info | pattern the regex analysis cannot model; overlap/reachability not checked | `[^(ab)\1.*]` | avoid back-references and look-arounds |
| PG213 | warning | an operation uses a policy that is always true | `read = default` (Glance: `''`) | `@` if meant, or a real check |
| PG214 | warning | an injected property (`inject_properties`, from `--config-file`/`--paste-ini`) that a caller it is injected for (no `inject_ignore_roles` role) may update or delete: the injection is only a default | `inject_properties = x_owner:{project_id}`, `[^x_]` `update = admin,member` | `update = admin`, `delete = admin` |
| PG215 | warning | an injected property no section matches: nobody may read or change it, admins included | `inject_properties = zz:1` with no `[.*]` | add a section for it |
| PG301 | warning | a policy name given twice in one YAML file (last wins, silently) | `"x"` twice | remove one |
| PG302 | warning | a check string that is always true (`""`, `@`, `... or @`) | `"open": ""` | require roles, or `!` |
| PG303 | error | a check string oslo.policy cannot parse (it becomes `!`) or evaluate, a value that is no check string (`"x":` is allow-all to oslo.policy), a name that is not a string | `role:admin or or role:member` | fix the syntax |
| PG304 | error | `rule:X` where X is defined nowhere (falls back to `default`) | `rule:is_owner` | define X or fix the name |
| PG305 | error | cyclic `rule:` references (each request through them would recurse until it fails) | `a: rule:b`, `b: rule:a` | break the cycle |
| PG401 | error | `propguard check`: an authenticating pipeline without propguard | `keystone+caching = ... authtoken context cache rootapp` | insert propguard after authtoken |
| PG402 | error | `propguard check`: propguard before the auth layer | `propguard authtoken context` | `authtoken propguard context` |
| PG403 | error | `propguard check`: propguard in the used pipeline with no auth layer | flavor unset: `default = ... propguard unauthenticated-context` | use the keystone flavor |
| PG404 | error | `propguard check`: Glance's `property_protection_file` is set | `property_protection_file = /etc/glance/pp.conf` | remove it |
| PG405 | error | `propguard check`: `image_property_quota` not -1 while propguard counts | `image_property_quota = 128` | `image_property_quota = -1` |
| PG406 | error | `propguard check`: `name_collation` disagrees with `[database] connection` | `binary` with `mysql+pymysql://` | `name_collation = auto` |
| PG407 | error | `propguard check`: page sizes differ from Glance's | `limit_param_default = 50` in Glance only | the same value in `[propguard]` |
| PG408 | error | `propguard check`: an unknown option (did you mean) | `rule_formt = policies` | `rule_format = policies` |
| PG409 | error | `propguard check`: a value the filter refuses at start, or no `rules_file` | `reload_interval = 5s` | a valid value |
| PG410 | error | `propguard check`: an option that points at nothing | `relations_outbox` without `relations_connection` | set it, or remove the option |
| PG306 | warning | a check that can never match propguard's credentials: a key they do not have (they have those of oslo.context's `to_policy_values()`, plus `system`; `roles:` and `service_roles:` compare case-insensitively, like `role:`) | `service_role:service` | `service_roles:service` |

One fixture per code lives in `tests/lint_fixtures/codes/` and produces
exactly its finding.

## What Glance's own files give

* `etc/property-protections-roles.conf.sample`: nothing.
* `etc/property-protections-policies.conf.sample`: one PG213: `[^x_.*]` uses
  Glance's `default` policy, whose check string is `''` (everyone). Intended
  there, but it is exactly the fallback that makes a misspelt policy name
  allow everyone in Glance; write `@` to say "everyone".
* `glance/tests/etc/property-protections.conf`: PG204 for the twelve
  unanchored literal sections, PG205 for `[x_foo_*]`, PG206 for
  `[spl_update_only_prop]` (spl_role may update, not read) and `[x_none_read]`
  (create without read), PG207 for `admin,Member`.

## explain and matrix

`explain` prints, per operation, ALLOWED/DENIED, the section and
`file:line` that decided, and why (`role entry 'admin' matched`, `policy ...
passed`, or `no section matches this name: denied to everyone, admin
included`). `--service-roles` are taken as a confirmed service token that
carries one of `service_token_roles`. For an `os_glance*` name it adds that
Glance reserves the namespace itself: it refuses a create, update or delete of
such a property from any caller (403 "Attribute ... is reserved."), whatever
the rules say.

`matrix` rows are the sections in engine order (the built-in `[^os_glance]`
first), columns the role sets (`;`-separated; roles joined by `+` or `,`;
`service:<role>` for a service-token role; `-` for a caller with no role; an
empty set or role is refused), cells `CRUD` letters allowed or `-`. Each row is
decided by the real engine for an example name that the engine routes to that
section; a section no name reaches is `unreachable`. `--format html` writes a
self-contained, colour-coded page that stays readable at 1366 px with a dozen
role sets: long patterns wrap and are cut at 60 characters (the whole pattern
on hover), role-set headers wrap at `+`, `,` and `:`.

## policy defaults

`oslopolicy-sample-generator --namespace propguard` renders propguard's
defaults (`propguard.policy_defaults:list_rules`): `propguard:admin`,
`propguard:service_relay`, `propguard:admin_or_service_relay`,
`propguard:reader_via_service`. All names carry the `propguard:` prefix, so
`policy_namespaces = glance, propguard` loads both without a duplicate
`context_is_admin`.
"""
