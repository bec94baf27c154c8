/*
 * mlTrain: run `mlsteps train` (a training image as an MLflow run) and return its outputs.
 *
 *   def result = mlTrain(image: 'trainer:1.2', command: ['python', 'train.py'], gpus: 'all')
 *   echo "MLflow run ${result['run-id']}"
 *
 * Keys are the `mlsteps train` options in camelCase (option `shm-size` is key `shmSize`); see
 * mlTrain.txt. Behaviour lives in mlsteps: this step only builds the command line, runs it and
 * reads back the outputs file mlsteps writes.
 */

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        image: null,         // Training image, e.g. registry.example/trainer:1.4 (needed with backend: 'docker')
        command: [],         // Command and arguments to run (on the CLI: after --); a List or a String of shell words
        backend: null,       // docker runs the image; local runs the command as a process on this machine
        workdir: null,       // Working directory of the training command: in the container
        env: [],             // Environment for the command, KEY=VALUE; a List or a Map
        secretEnv: [],       // Names of environment variables passed in as secrets, a List
        secretsAsEnv: null,  // true passes the secretEnv values as environment variables instead of files
        mount: [],           // Bind mount into the container, host:container[:ro]; a List
        dataDir: null,       // Training data, mounted read-only at /data; its content digest is tagged on the run
        outputDir: null,     // Directory mounted at /output for the command's files
        gpus: null,          // GPUs for the container: all, none, auto, a count such as 2, or device ids such as 0,2
        shmSize: null,       // Size of /dev/shm, e.g. 2g
        memory: null,        // Memory limit, e.g. 8g
        cpus: null,          // CPU limit, e.g. 1.5
        user: null,          // User (name or uid[:gid]) the command runs as in the container
        network: null,       // Docker network
        timeout: null,       // Stop the training after this long, e.g. 90m or 2h
        pull: null,          // When to pull the image: always, missing or never (mlsteps: missing)
        label: [],           // Container label, key=value; a List or a Map
        platform: null,      // Image platform, e.g. linux/amd64
        runId: null,         // Continue this MLflow run instead of creating one
        runName: null,       // Name of the new MLflow run
        trackingUri: null,   // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        experiment: null,    // MLflow experiment name (mlsteps: Default)
        config: null,        // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',  // The mlsteps executable: a path, or a List of words, e.g. ['python3', '-m', 'steps']
    ]
    String problem = invalidKeys(userConfig, defaultConfig)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    String name = "train-${safeName(env.BUILD_TAG ?: 'build')}-${UUID.randomUUID().toString().take(8)}"
    String outputsFile = ".mlsteps/outputs/${name}.json"
    String summaryFile = ".mlsteps/summary/${name}.md"
    List<String> environment = [
        "MLSTEPS_OUTPUTS_FILE=${outputsFile}".toString(),
        "MLSTEPS_SUMMARY_FILE=${summaryFile}".toString(),
    ]
    // Values that are not `train` flags travel as the environment mlsteps reads; withEnv does not
    // pass them through a shell, so they need no quoting.
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }
    if (config.experiment) {
        environment << "MLSTEPS_MLFLOW_EXPERIMENT=${config.experiment}".toString()
    }
    if (config.command instanceof CharSequence && config.command) {
        environment << "MLSTEPS_TRAIN_COMMAND=${config.command}".toString()
    }

    String script = trainCommand(config, defaultConfig)
    int status = 0
    withEnv(environment) {
        status = sh(script: script, returnStatus: true, label: 'mlsteps train')
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
        error failureMessage(status, outputs)
    }
    return outputs
}

// Keys that are not `mlsteps train` flags.
@NonCPS
private static List<String> nonFlagKeys() {
    return ['command', 'trackingUri', 'experiment', 'config', 'mlsteps']
}

// The forms a key's value may take; keys not listed take one String or number.
@NonCPS
private static Map<String, String> valueForms() {
    String pairs = "a List of 'KEY=VALUE' strings or a Map"
    String words = 'a List of strings or one String'
    return [command: words, mlsteps: words, env: pairs, label: pairs, secretEnv: words, mount: words]
}

// Keys that take true or false (a Boolean, or the String 'true' or 'false').
@NonCPS
private static List<String> booleanKeys() {
    return ['secretsAsEnv']
}

@NonCPS
private static String invalidKeys(Map userConfig, Map defaultConfig) {
    List<String> known = defaultConfig.keySet()*.toString()
    for (Object key : userConfig.keySet()) {
        if (!known.contains(key.toString())) {
            return "mlTrain: unknown key '${key}'; known keys: ${known.join(', ')}"
        }
    }
    Map<String, String> forms = valueForms()
    for (String key : known) {
        Object value = userConfig[key]
        if (booleanKeys().contains(key)) {
            boolean isBoolean = value == null || value instanceof Boolean || value.toString() in ['true', 'false']
            if (!isBoolean) {
                return "mlTrain: key '${key}' must be true or false, not '${value}'"
            }
            continue
        }
        String form = forms[key] ?: 'a String or a number'
        boolean ok = value == null ||
            (value instanceof List || value instanceof CharSequence) && forms[key] ||
            value instanceof Map && form.endsWith('Map') ||
            (value instanceof CharSequence || value instanceof Number) && !forms[key]
        if (!ok) {
            return "mlTrain: key '${key}' must be ${form}, not ${value.getClass().simpleName}"
        }
    }
    return null
}

/** camelCase key → kebab-case flag: shmSize → --shm-size. */
@NonCPS
private static String flagOf(String key) {
    return '--' + key.replaceAll('([A-Z])', '-$1').toLowerCase()
}

@NonCPS
private static List<String> items(Object value) {
    switch (value) {
        case null:
            return []
        case Map:
            return value.collect { k, v -> "${k}=${v}".toString() }
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
private static String trainCommand(Map config, Map defaultConfig) {
    List<String> words = items(config.mlsteps)
    words += ['--ci', 'jenkins']
    if (config.config) {
        words += ['--config', config.config.toString()]
    }
    words << 'train'
    List<String> flagKeys = defaultConfig.keySet()*.toString() - nonFlagKeys()
    for (String key : flagKeys) {
        // An empty value means "not set", as in the other faces.
        List<String> values = items(config[key]).findAll { String item -> item != '' }
        words += values.collectMany { String item -> [flagOf(key), item] }
    }
    if (config.command instanceof List && config.command) {
        words << '--'
        words.addAll(items(config.command))
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
private static String failureMessage(int status, Map outputs) {
    String meaning = [
        1: 'the step failed',
        2: 'bad input or configuration',
        3: 'a gate said no',
        130: 'interrupted',
        143: 'terminated',
    ][status] ?: 'unexpected exit'
    String message = "mlTrain: mlsteps train exited with code ${status} (${meaning}); see its message above"
    List<String> details = []
    if (outputs['exit-code']) {
        details << "training command exit code ${outputs['exit-code']}"
    }
    if (outputs['run-id']) {
        details << "MLflow run ${outputs['run-id']}"
    }
    return details ? "${message} [${details.join(', ')}]" : message
}
