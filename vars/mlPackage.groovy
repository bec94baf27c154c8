/*
 * mlPackage: run `mlsteps package` (an MLflow model into a smoke-tested serving image, pushed
 * and registered) and return its outputs.
 *
 *   def trained = mlTrain(image: 'trainer:1.2', command: ['python', 'train.py'])
 *   def packaged = mlPackage(modelUri: trained['model-uri'], name: 'churn',
 *                            registry: 'registry.internal:5000/ml', registryCredentialsId: 'registry-push')
 *   echo "model version ${packaged['model-version']} is ${packaged['image-ref']}"
 *
 * Keys are the `mlsteps package` options in camelCase (option `base-image` is key `baseImage`);
 * see mlPackage.txt. The registry password is never a key: it comes from the Jenkins credential
 * named by registryCredentialsId, or from MLSTEPS_PACKAGE_REGISTRY_PASSWORD in the environment.
 * Behaviour lives in mlsteps: this step only builds the command line, runs it and reads back the
 * outputs file mlsteps writes.
 */

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        modelUri: null,               // The MLflow model: runs:/RUN_ID/PATH, models:/NAME/VERSION, models:/NAME@ALIAS
        registry: null,               // Registry to push to, HOST[:PORT][/NAMESPACE] without a scheme
        repository: null,             // Image repository name (without registry or tag)
        tag: null,                    // Image tag
        baseImage: null,              // Base image of the build
        gpu: null,                    // true builds on a CUDA runtime base image (when baseImage is not given)
        platform: null,               // Target platform of the build, e.g. linux/amd64
        buildArg: [],                 // Build argument, KEY=VALUE; a List or a Map
        pipIndexUrl: null,            // Package index pip installs the model's requirements from (a mirror or proxy)
        pipExtraIndexUrl: [],         // Extra package index URL for the requirements, without credentials; a List
        caBundle: null,               // CA bundle (PEM file) pip trusts during the build, for a proxy that re-signs TLS
        noCache: null,                // true rebuilds the dependencies image even when one for the same requirements…
        push: null,                   // Push the image to registry
        load: null,                   // Keep the built image in the local Docker Engine (mlsteps: true)
        smokeTest: null,              // Smoke-test the image before pushing
        smokeTimeout: null,           // How long the smoke test waits for the server to answer /ping, e.g. 2m
        register: null,               // Register the model version
        registryUsername: null,       // User name for registry, its password in MLSTEPS_PACKAGE_REGISTRY_PASSWORD
        registryCredentialsId: null,  // Username with password credential for the registry: its user name and password
        trackingUri: null,            // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        name: null,                   // Registered model name in MLflow
        config: null,                 // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',           // The mlsteps executable: a path, or a List of words
    ]
    String problem = invalidKeys(userConfig, defaultConfig)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    String name = "package-${safeName(env.BUILD_TAG ?: 'build')}-${UUID.randomUUID().toString().take(8)}"
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

    String script = packageCommand(config, defaultConfig)
    int status = 0
    // usernamePassword() is a pipeline symbol, so the binding is made here, not in a @NonCPS
    // helper. The password reaches mlsteps only as a variable withCredentials binds (and
    // Jenkins masks); it is never part of the command line or of a Groovy string.
    List bindings = []
    if (config.registryCredentialsId) {
        bindings << usernamePassword(
            credentialsId: config.registryCredentialsId.toString(),
            usernameVariable: 'MLSTEPS_PACKAGE_REGISTRY_USERNAME',
            passwordVariable: 'MLSTEPS_PACKAGE_REGISTRY_PASSWORD'
        )
    }
    withCredentials(bindings) {
        withEnv(environment) {
            status = sh(script: script, returnStatus: true, label: 'mlsteps package')
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
        error failureMessage(status)
    }
    return outputs
}

// Keys that are not `mlsteps package` flags.
@NonCPS
private static List<String> nonFlagKeys() {
    return ['registryCredentialsId', 'trackingUri', 'config', 'mlsteps']
}

// The forms a key's value may take; keys not listed take one String or number.
@NonCPS
private static Map<String, String> valueForms() {
    String words = 'a List of strings or one String'
    return [buildArg: "a List of 'KEY=VALUE' strings or a Map", pipExtraIndexUrl: words, mlsteps: words]
}

// Keys that take true or false (a Boolean, or the String 'true' or 'false').
@NonCPS
private static List<String> booleanKeys() {
    return ['gpu', 'noCache', 'push', 'load', 'smokeTest', 'register']
}

@NonCPS
private static String invalidKeys(Map userConfig, Map defaultConfig) {
    List<String> known = defaultConfig.keySet()*.toString()
    for (Object key : userConfig.keySet()) {
        if (!known.contains(key.toString())) {
            return "mlPackage: unknown key '${key}'; known keys: ${known.join(', ')}"
        }
    }
    Map<String, String> forms = valueForms()
    for (String key : known) {
        Object value = userConfig[key]
        if (booleanKeys().contains(key)) {
            boolean isBoolean = value == null || value instanceof Boolean || value.toString() in ['true', 'false']
            if (!isBoolean) {
                return "mlPackage: key '${key}' must be true or false, not '${value}'"
            }
            continue
        }
        String form = forms[key] ?: 'a String or a number'
        boolean ok = value == null ||
            (value instanceof List || value instanceof CharSequence) && forms[key] ||
            value instanceof Map && form.endsWith('Map') ||
            (value instanceof CharSequence || value instanceof Number) && !forms[key]
        if (!ok) {
            return "mlPackage: key '${key}' must be ${form}, not ${value.getClass().simpleName}"
        }
    }
    if (userConfig.registryCredentialsId && userConfig.registryUsername) {
        return 'mlPackage: give registryCredentialsId (its credential holds the user name) or ' +
            'registryUsername, not both'
    }
    return null
}

/** camelCase key → kebab-case flag: baseImage → --base-image. */
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
private static String packageCommand(Map config, Map defaultConfig) {
    List<String> words = items(config.mlsteps)
    words += ['--ci', 'jenkins']
    if (config.config) {
        words += ['--config', config.config.toString()]
    }
    words << 'package'
    List<String> flagKeys = defaultConfig.keySet()*.toString() - nonFlagKeys()
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
private static String failureMessage(int status) {
    String meaning = [
        1: 'the step failed',
        2: 'bad input or configuration',
        3: 'a gate said no',
        130: 'interrupted',
        143: 'terminated',
    ][status] ?: 'unexpected exit'
    return "mlPackage: mlsteps package exited with code ${status} (${meaning}); see its message above"
}
