/*
 * withVaultSecrets: run a block with secrets from Vault in its environment, masked in the console
 * log, and revoke the leases and the login token when the block ends, however it ends.
 *
 *   withVaultSecrets(url: 'https://vault.internal:8200', method: 'approle',
 *                    roleIdCredentialsId: 'vault-role-id', secretIdCredentialsId: 'vault-secret-id',
 *                    secrets: 'secret/ml/mlflow token | MLFLOW_TRACKING_TOKEN') {
 *       sh './train.sh'   // sees $MLFLOW_TRACKING_TOKEN; the log shows ******** for it
 *   }
 *
 * Keys are the `mlsteps secrets fetch` options in camelCase (option `ca-cert` is key `caCert`);
 * the credentials (token, role id, secret id, JWT) are never keys: they come from Jenkins
 * credentials named by the *CredentialsId keys, or from the environment. See
 * withVaultSecrets.txt. Behaviour lives in mlsteps: this step builds the two command lines
 * (fetch, revoke), reads back the file fetch writes and wraps the block.
 */

import mlsteps.jenkins.Cli

def call(Closure body) {
    return call([:], body)
}

def call(Map userConfig, Closure body = null) {
    Map defaultConfig = [
        secrets: null,                // What to read, in vault-action's syntax: one String of requests
        url: null,                    // Vault server, e.g. https://vault.example:8200
        namespace: null,              // Vault namespace (X-Vault-Namespace)
        method: null,                 // How to log in: token, approle, jwt or kubernetes (mlsteps: token)
        mount: null,                  // Path the auth method is mounted at
        role: null,                   // Role to log in as (jwt, kubernetes)
        tokenCredentialsId: null,     // Secret text credential holding the Vault token (method token)
        tokenFile: null,              // File holding the Vault token
        roleIdCredentialsId: null,    // Secret text credential holding the AppRole role id
        roleIdFile: null,             // File holding the AppRole role id
        secretIdCredentialsId: null,  // Secret text credential holding the AppRole secret id
        secretIdFile: null,           // File holding the AppRole secret id
        secretIdWrapped: null,        // true: the secret id is a response-wrapping token
        jwtCredentialsId: null,       // Secret text credential holding a JWT (method jwt), e.g. an OIDC id token
        jwtFile: null,                // File holding the JWT (method jwt)
        kubernetesTokenPath: null,    // Service-account token (method kubernetes)
        caCert: null,                 // CA bundle of the server
        clientCert: null,             // TLS client certificate
        clientKey: null,              // TLS client key
        tlsSkipVerify: null,          // true: do not check the server's certificate (test servers only; mlsteps warns)
        timeout: null,                // Total time for the login and the reads, retries included, e.g. 30s
        config: null,                 // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',           // The mlsteps executable: a path, or a List of words
    ]
    Cli cli = new Cli(this, 'withVaultSecrets')
    // Its own forms: true-or-false keys take any scalar (tests/faces/test_jenkins_forms.py).
    Map<String, String> ownForms = [secrets: Cli.WORDS, mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, ownForms, Cli.SCALAR_OR_BOOLEAN) ?:
        (body == null ? missingBody() : null)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // A directory of this call's own under the workspace's @tmp sibling: nothing lands in the
    // checkout, and concurrent calls (parallel branches) do not share files.
    String dir = "${pwd(tmp: true)}/mlsteps-secrets-${UUID.randomUUID().toString().take(8)}"
    String secretsFile = "${dir}/secrets.json"
    String leaseFile = "${dir}/lease.json"
    List<String> environment = [
        "MLSTEPS_OUTPUTS_FILE=${dir}/outputs.json".toString(),
        "MLSTEPS_SUMMARY_FILE=${dir}/summary.md".toString(),
    ]
    String fetch = fetchCommand(config, defaultConfig, secretsFile, leaseFile)
    // The record is removed by a successful revoke; the directory goes with it. A failed revoke
    // keeps both, so the record can be revoked again by hand.
    String revoke = revokeCommand(config, leaseFile) + ' && rm -rf ' + Cli.shellQuote(dir)

    boolean bodyDone = false
    try {
        // string() is a pipeline symbol, so the bindings are made here, not in a @NonCPS helper.
        List bindings = []
        for (Map binding : credentialsGiven(config)) {
            bindings << string(credentialsId: binding.credentialsId, variable: binding.variable)
        }
        int status = cli.runScript('mlsteps secrets fetch', fetch, environment, bindings)
        if (status != 0) {
            error cli.failure('secrets fetch', status, [:])
        }
        if (!fileExists(secretsFile)) {
            // A dry run (MLSTEPS_DRY_RUN) printed its plan and read nothing: there are no values
            // to run the block with, and the block may do real work, so it does not run.
            echo 'withVaultSecrets: dry run (MLSTEPS_DRY_RUN is set): mlsteps printed its plan ' +
                'above and read no secrets, so the block is not run'
            return null
        }
        Map values = [:]
        try {
            values = Cli.plainMap(readJSON(file: secretsFile))
        } finally {
            // The values now live in this step only; no copy stays on disk while the block runs.
            sh(script: 'rm -f ' + Cli.shellQuote(secretsFile), label: 'remove the secrets file')
        }
        // Jenkins masks credentials it binds itself, not values a step reads: the Mask
        // Passwords plugin masks these, each line of a multi-line value on its own (the console
        // is filtered line by line).
        Object result = null
        wrap([$class: 'MaskPasswordsBuildWrapper', varPasswordPairs: maskPairs(values)]) {
            withEnv(environmentOf(values)) {
                result = body()
            }
        }
        bodyDone = true
        return result
    } finally {
        int revoked = sh(script: revoke, returnStatus: true, label: 'mlsteps secrets revoke')
        if (revoked != 0) {
            String message = cli.failure('secrets revoke', revoked, [:]) + "; the lease record stays in ${dir}"
            if (bodyDone) {
                error message
            }
            // The block's own failure is what the build reports; this one is only told.
            echo message
        }
    }
}

// Options `secrets revoke` takes too: how to reach the server again.
@NonCPS
private static List<String> connectionKeys() {
    return ['url', 'namespace', 'caCert', 'clientCert', 'clientKey', 'tlsSkipVerify', 'timeout']
}

// The credentials given, for string() bindings: each *CredentialsId key is a Secret text
// credential mlsteps reads from the variable named (generated from the option table:
// python -m steps.faces).
@NonCPS
private static List<Map> credentialsGiven(Map config) {
    Map<String, String> credentials = [tokenCredentialsId: 'MLSTEPS_SECRETS_TOKEN',
                                       roleIdCredentialsId: 'MLSTEPS_SECRETS_ROLE_ID',
                                       secretIdCredentialsId: 'MLSTEPS_SECRETS_SECRET_ID',
                                       jwtCredentialsId: 'MLSTEPS_SECRETS_JWT']
    return Cli.credentialBindings(config, credentials)
}

@NonCPS
private static String missingBody() {
    return 'withVaultSecrets: give the block to run: withVaultSecrets(url: ..., secrets: ...) { sh ... }'
}

@NonCPS
private static String fetchCommand(Map config, Map defaultConfig, String secretsFile, String leaseFile) {
    // Keys that are not `secrets fetch` flags (generated from the option table: python -m steps.faces).
    List<String> notFlags = ['tokenCredentialsId', 'roleIdCredentialsId', 'secretIdCredentialsId', 'jwtCredentialsId',
                             'config', 'mlsteps']
    List<String> keys = Cli.flagKeys(defaultConfig, notFlags)
    List<String> words = Cli.command(config, ['secrets', 'fetch']) + Cli.flags(config, keys)
    return Cli.shellLine(words + ['--file', secretsFile, '--lease-file', leaseFile])
}

@NonCPS
private static String revokeCommand(Map config, String leaseFile) {
    List<String> words = Cli.command(config, ['secrets', 'revoke']) + Cli.flags(config, connectionKeys())
    return Cli.shellLine(words + ['--lease-file', leaseFile])
}

@NonCPS
private static List<String> environmentOf(Map values) {
    return values.collect { name, value -> "${name}=${value}".toString() }
}

@NonCPS
private static List<Map> maskPairs(Map values) {
    List<Map> pairs = []
    values.each { name, value ->
        List<String> forms = maskForms(value.toString())
        if (value.toString().trim()) {
            pairs << [var: name.toString(), password: value.toString()]
        }
        forms.findAll { String form -> form != value.toString() }.eachWithIndex { String form, int index ->
            pairs << [var: "${name}_LINE_${index + 1}".toString(), password: form]
        }
    }
    return pairs
}

// What mlsteps' own faces mask of a value (steps/core/secret.py mask_lines), so a block's log is
// masked the same: a single-line value whole; each line of a multi-line one that holds
// something, without its indentation (a `{` or `},` registered would star every brace in the
// log, and lines of one or two characters give nothing away); each also without surrounding
// spaces and without terminal escapes (a viewer that strips colour shows the value without).
@NonCPS
private static List<String> maskForms(String text) {
    List<String> lines = pyLines(text).findAll { String line -> pyStrip(line) }
    boolean single = lines.size() <= 1
    List<String> forms = []
    if (single && pyStrip(text)) {
        String whole = text.replaceAll(/^[\r\n]+|[\r\n]+$/, '')
        forms << whole << pyStrip(whole)
    } else if (!single) {
        forms += lines.collect { String line -> pyStrip(line) }
    }
    String ansi = '\\x1b(?:\\[[0-?]*[ -/]*[@-~]|\\][^\\x07\\x1b]*(?:\\x07|\\x1b\\\\)|[@-Z\\\\-_])'
    forms += forms.collectMany { String form ->
        String plain = form.replaceAll(ansi, '')
        [plain, pyStrip(plain)]
    }
    return forms.findAll { String form ->
        // Characters, not UTF-16 units: an emoji is one, as in Python.
        form && (single || (form.codePointCount(0, form.length()) > 2 &&
            !(form ==~ /[\{\}\[\]\(\),:;"' \t]+/)))
    }.unique()
}

// Python's str.splitlines() and str.strip(), which mask_lines uses. Java's readLines() ends a
// line only at \n and \r, and its strip() keeps NBSP, U+2007, U+202F and U+0085: a value pasted
// with a trailing NBSP and printed trimmed would be masked by mlsteps but not here.
@NonCPS
private static List<String> pyLines(String text) {
    return text.split('\\r\\n|[\\n\\r\\x0B\\f\\x1C\\x1D\\x1E\\x85\\u2028\\u2029]') as List<String>
}

@NonCPS
private static String pyStrip(String text) {
    String space = '[\\t\\n\\x0B\\f\\r\\x1C-\\x1F \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029' +
        '\\u202F\\u205F\\u3000]'
    return text.replaceAll('^' + space + '+|' + space + '+$', '')
}
