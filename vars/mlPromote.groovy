/*
 * mlPromote: run `mlsteps promote` (move the champion alias to a gated version with
 * compare-and-set under a lock), or with rollback: true `mlsteps rollback`, and return the
 * outputs.
 *
 *   def gate = mlGate(modelUri: "models:/churn/${version}", name: 'churn')
 *   def promoted = mlPromote(version: gate['candidate-version'], name: 'churn',
 *                            gateReportDigest: gate['report-digest'],
 *                            requireApproval: true, approvers: 'release-leads')
 *   echo "champion: version ${promoted['champion-version']}"
 *
 * Keys are the `mlsteps promote` options in camelCase (option `lock-path` is key `lockPath`);
 * see mlPromote.txt. With requireApproval and no approvedBy, this step asks with Jenkins' input
 * step and passes who approved to mlsteps. Tokens are never keys: they come from the Jenkins
 * credentials named by vaultTokenCredentialsId and githubTokenCredentialsId, or from the
 * environment. Behaviour lives in mlsteps: this step only builds the command line, runs it and
 * reads back the outputs file mlsteps writes.
 */

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        version: null,                   // The model version to promote (the candidate the gate judged)
        alias: null,                     // The alias that marks the model in production (mlsteps: champion)
        previousAlias: null,             // The alias that keeps the replaced champion, for mlsteps rollback
        expectedChampion: null,          // The champion the move is conditional on (compare-and-set)
        requireGate: null,               // Refuse a version the gate has not passed (mlsteps: true)
        gateReportDigest: null,          // The gate step's report-digest output, handed on by the pipeline
        requireApproval: null,           // Refuse unless someone approved: approvedBy
        approvalEnvironment: null,       // For mlsteps on GitHub Actions only
        approvedBy: null,                // Who approved the promotion (Jenkins: the input step's submitter)
        lock: null,                      // What serialises promotions of the model (mlsteps: file)
        lockPath: null,                  // Where the lock is
        lockTtl: null,                   // A lock older than this is stale and taken over, e.g. 5m
        lockTimeout: null,               // How long to wait for a lock another promotion holds, e.g. 2m
        vaultUrl: null,                  // Vault server of lock: 'vault', e.g. https://vault.example:8200
        vaultNamespace: null,            // Vault namespace of lock: 'vault'
        vaultCaCert: null,               // CA certificate (PEM file) of the Vault server's TLS
        sagemakerModelPackageGroup: null, // SageMaker model package group to sync the decision to
        vaultTokenCredentialsId: null,   // Secret text credential holding the Vault token of lock: 'vault'
        githubTokenCredentialsId: null,  // Secret text credential holding a GitHub token
        trackingUri: null,               // MLflow tracking server, e.g. http://127.0.0.1:5000
        name: null,                      // Registered model name in MLflow
        rollback: false,                 // true runs mlsteps rollback instead
        approvers: null,                 // Who may answer the input step: user or group names, comma-separated
        config: null,                    // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',              // The mlsteps executable: a path, or a List of words
    ]
    String problem = invalidKeys(userConfig, defaultConfig)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig
    boolean rollback = config.rollback.toString() == 'true'
    String command = rollback ? 'rollback' : 'promote'

    if (!rollback && config.requireApproval.toString() == 'true' && !config.approvedBy) {
        // The approval is Jenkins' own: the input step records who pressed the button.
        String what = "version ${config.version ?: '(from the config file)'} of ${config.name ?: 'the model'}"
        Map question = [
            message: "Promote ${what} to ${config.alias ?: 'champion'}?",
            ok: 'Promote',
            submitterParameter: 'approver',
        ]
        if (config.approvers) {
            question.submitter = config.approvers.toString()
        }
        Object answer = input(question)
        config.approvedBy = answer instanceof Map ? answer.approver : answer
        if (!config.approvedBy) {
            error "mlPromote: the input step returned no approver for ${what}"
        }
    }

    String name = "${command}-${safeName(env.BUILD_TAG ?: 'build')}-${UUID.randomUUID().toString().take(8)}"
    String outputsFile = ".mlsteps/outputs/${name}.json"
    String summaryFile = ".mlsteps/summary/${name}.md"
    List<String> environment = [
        "MLSTEPS_OUTPUTS_FILE=${outputsFile}".toString(),
        "MLSTEPS_SUMMARY_FILE=${summaryFile}".toString(),
    ]
    // As in mlTrain, the tracking URI travels as the environment mlsteps reads (withEnv passes it
    // without a shell, so it needs no quoting), not on the command line the console shows.
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }

    String script = promoteCommand(config, defaultConfig, command)
    int status = 0
    // string() is a pipeline symbol, so the bindings are made here, not in a @NonCPS helper.
    // The tokens reach mlsteps only as variables withCredentials binds (and Jenkins masks).
    List bindings = []
    if (config.vaultTokenCredentialsId) {
        bindings << string(credentialsId: config.vaultTokenCredentialsId.toString(),
                           variable: 'MLSTEPS_PROMOTE_VAULT_TOKEN')
    }
    if (config.githubTokenCredentialsId) {
        bindings << string(credentialsId: config.githubTokenCredentialsId.toString(),
                           variable: 'MLSTEPS_PROMOTE_GITHUB_TOKEN')
    }
    withCredentials(bindings) {
        withEnv(environment) {
            status = sh(script: script, returnStatus: true, label: "mlsteps ${command}")
        }
    }

    Map outputs = [:]
    if (fileExists(outputsFile)) {
        outputs = plainMap(readJSON(file: outputsFile))
    }
    if (fileExists(summaryFile)) {
        // archiveArtifacts takes paths from the workspace root, which differs from here in dir().
        String artifact = workspacePath(env.WORKSPACE, pwd(), summaryFile)
        archiveArtifacts(artifacts: artifact, allowEmptyArchive: true, fingerprint: false)
    }
    if (status != 0) {
        error failureMessage(command, status)
    }
    return outputs
}

// Keys that are not flags of either command.
@NonCPS
private static List<String> nonFlagKeys() {
    return ['vaultTokenCredentialsId', 'githubTokenCredentialsId', 'trackingUri', 'rollback', 'approvers',
            'config', 'mlsteps']
}

// Keys of promote that rollback does not take (it has no candidate, gate or approval).
@NonCPS
private static List<String> promoteOnlyKeys() {
    return ['version', 'requireGate', 'gateReportDigest', 'requireApproval', 'approvalEnvironment', 'approvedBy',
            'approvers']
}

// Keys that take true or false (a Boolean, or the String 'true' or 'false').
@NonCPS
private static List<String> booleanKeys() {
    return ['requireGate', 'requireApproval', 'rollback']
}

@NonCPS
private static String invalidKeys(Map userConfig, Map defaultConfig) {
    List<String> known = defaultConfig.keySet()*.toString()
    for (Object key : userConfig.keySet()) {
        if (!known.contains(key.toString())) {
            return "mlPromote: unknown key '${key}'; known keys: ${known.join(', ')}"
        }
    }
    for (String key : known) {
        Object value = userConfig[key]
        if (value == null) {
            continue
        }
        if (booleanKeys().contains(key)) {
            if (!(value instanceof Boolean || value.toString() in ['true', 'false'])) {
                return "mlPromote: key '${key}' must be true or false, not '${value}'"
            }
            continue
        }
        boolean words = key == 'mlsteps'
        boolean ok = value instanceof CharSequence ||
            (words ? value instanceof List : value instanceof Number)
        if (!ok) {
            String form = words ? 'a List of strings or one String' : 'a String or a number'
            return "mlPromote: key '${key}' must be ${form}, not ${value.getClass().simpleName}"
        }
    }
    if (userConfig.rollback?.toString() == 'true') {
        List<String> given = promoteOnlyKeys().findAll { String key -> userConfig[key] != null }
        if (given) {
            return 'mlPromote: rollback: true moves the alias back to the version under previousAlias and takes ' +
                "no ${given.join(', ')}; remove ${given.size() == 1 ? 'it' : 'them'}, or promote without rollback"
        }
    }
    return null
}

/** camelCase key → kebab-case flag: lockPath → --lock-path. */
@NonCPS
private static String flagOf(String key) {
    return '--' + key.replaceAll('([A-Z])', '-$1').toLowerCase()
}

@NonCPS
private static List<String> items(Object value) {
    switch (value) {
        case null:
            return []
        case List:
            return value*.toString()
        default:
            return [value.toString()]
    }
}

/** One word for the shell: single-quoted, with each ' written as '\''. */
@NonCPS
private static String shellQuote(Object word) {
    return "'" + word.toString().replace("'", "'\\''") + "'"
}

@NonCPS
private static String promoteCommand(Map config, Map defaultConfig, String command) {
    List<String> words = items(config.mlsteps)
    words += ['--ci', 'jenkins']
    if (config.config) {
        words += ['--config', config.config.toString()]
    }
    words << command
    List<String> flagKeys = defaultConfig.keySet()*.toString() - nonFlagKeys()
    if (command == 'rollback') {
        flagKeys -= promoteOnlyKeys()
    }
    for (String key : flagKeys) {
        // An empty value means "not set", as in the other faces.
        List<String> values = items(config[key]).findAll { String item -> item != '' }
        words += values.collectMany { String item -> [flagOf(key), item] }
    }
    return words.collect { String word -> shellQuote(word) }.join(' ')
}

@NonCPS
private static String workspacePath(String workspace, String here, String path) {
    if (!workspace || here == workspace || !here.startsWith(workspace + '/')) {
        return path
    }
    return here.substring(workspace.length() + 1) + '/' + path
}

@NonCPS
private static String safeName(String text) {
    return text.replaceAll('[^A-Za-z0-9._-]', '_')
}

// readJSON gives a JSONObject in Jenkins; callers get a plain Map of strings.
@NonCPS
private static Map plainMap(Object json) {
    Map result = [:]
    (json as Map).each { k, v -> result[k.toString()] = v == null ? '' : v.toString() }
    return result
}

@NonCPS
private static String failureMessage(String command, int status) {
    String meaning = [
        1: command == 'promote' ? 'the step failed, or another promotion moved the champion first' : 'the step failed',
        2: 'bad input or configuration',
        3: 'the gate rejected the version',
        130: 'interrupted',
        143: 'terminated',
    ][status] ?: 'unexpected exit'
    return "mlPromote: mlsteps ${command} exited with code ${status} (${meaning}); see its message above"
}
