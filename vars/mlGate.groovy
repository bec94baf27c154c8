/*
 * mlGate: run `mlsteps gate` (judge a candidate model against thresholds, the champion, slices
 * and its data), archive its report and return its outputs.
 *
 *   def packaged = mlPackage(modelUri: trained['model-uri'], name: 'churn')
 *   def gate = mlGate(modelUri: "models:/churn/${packaged['model-version']}", name: 'churn',
 *                     metrics: [roc_auc: [min: 0.8, 'min-delta': -0.005]])
 *   echo "gate: ${gate.decision} against version ${gate['champion-version'] ?: 'none'}"
 *
 * Keys are the `mlsteps gate` options in camelCase (option `report-dir` is key `reportDir`);
 * see mlGate.txt. A rejected candidate (exit 3) fails the step after its report is archived
 * and its outputs are recorded in env (MLGATE_DECISION, …) for a pipeline that catches it.
 * Behaviour lives in mlsteps: this step only builds the command line, runs it, archives the
 * report and reads back the outputs file mlsteps writes.
 */

import groovy.json.JsonOutput

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        modelUri: null,       // The candidate: models:/NAME/VERSION (e.g. package's model-version output)
        championAlias: null,  // Alias of the registered model (name) that marks the version to compare against
        metrics: null,        // Thresholds per metric; a Map or YAML
        data: null,           // Evaluation data (CSV or Parquet) with the target column
        target: null,         // The label column of data
        task: null,           // What the model predicts (mlsteps: auto)
        trainingData: null,   // The data the model was trained on (CSV or Parquet)
        slices: null,         // Per-group checks on data; a Map or YAML
        schema: null,         // Schema check of data against the training data's schema; a Map or YAML
        quality: null,        // Quality rules on data; a Map or YAML
        drift: null,          // Drift from trainingData to data per feature; a Map or YAML
        resamples: null,      // Bootstrap resamples for the intervals (at least 100) (mlsteps: 1000)
        confidence: null,     // Level of the intervals: at least 0.5, below 1 (0.95: 95% intervals) (mlsteps: 0.95)
        seed: null,           // Seed of the resampling
        defaultMargin: null,  // How much worse than the champion a metric without a threshold may be
        warnOnly: [],         // Checks shown but not enforced: a kind; a List
        reportDir: null,      // Where report.md, report.json and report.png are written
        logReport: null,      // Log the report to the candidate's MLflow run (mlsteps: true)
        trackingUri: null,    // MLflow tracking server, e.g. http://127.0.0.1:5000 (none: nothing is tracked)
        name: null,           // Registered model name in MLflow
        config: null,         // Path of an mlsteps.yaml
        mlsteps: 'mlsteps',   // The mlsteps executable: a path, or a List of words, e.g. ['python3', '-m', 'steps']
    ]
    String problem = invalidKeys(userConfig, defaultConfig)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    String name = "gate-${safeName(env.BUILD_TAG ?: 'build')}-${UUID.randomUUID().toString().take(8)}"
    String outputsFile = ".mlsteps/outputs/${name}.json"
    List<String> environment = [
        "MLSTEPS_OUTPUTS_FILE=${outputsFile}".toString(),
        // The summary is the report's markdown, which the report directory holds already.
        "MLSTEPS_SUMMARY_FILE=.mlsteps/summary/${name}.md".toString(),
    ]
    // As in mlTrain, the tracking URI travels as the environment mlsteps reads (withEnv passes it
    // without a shell, so it needs no quoting), not on the command line the console shows.
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }

    String script = gateCommand(config, defaultConfig)
    int status = 0
    withEnv(environment) {
        status = sh(script: script, returnStatus: true, label: 'mlsteps gate')
    }

    // mlsteps writes the outputs on a rejection too (exit 3): the report is archived either way.
    Map outputs = [:]
    if (fileExists(outputsFile)) {
        outputs = plainMap(readJSON(file: outputsFile))
    }
    String archived = null
    if (outputs.report) {
        archived = reportArtifacts(env.WORKSPACE, pwd(), outputs.report)
        if (archived) {
            archiveArtifacts(artifacts: archived, allowEmptyArchive: true, fingerprint: false)
        } else {
            echo "mlGate: the report ${outputs.report} is outside the workspace and is not archived"
        }
    }
    // Recorded in env before a rejection fails the step: catchError swallows the error and
    // the return value with it, so a pipeline that goes on reads env.MLGATE_DECISION and the
    // rest. Every call sets all of them ('' when mlsteps wrote no outputs), so none is stale.
    for (String key : outputKeys()) {
        env."${envName(key)}" = outputs[key] ?: ''
    }
    if (status != 0) {
        error failureMessage(status, outputs, archived)
    }
    return outputs
}

// The outputs mlsteps gate writes (steps/gate_options.py OUTPUTS), each also recorded in env.
@NonCPS
private static List<String> outputKeys() {
    return ['decision', 'candidate-version', 'champion-version', 'report', 'report-digest', 'failed']
}

/** report-digest → MLGATE_REPORT_DIGEST. */
@NonCPS
private static String envName(String key) {
    return 'MLGATE_' + key.toUpperCase().replace('-', '_')
}

// Keys that are not `mlsteps gate` flags.
@NonCPS
private static List<String> nonFlagKeys() {
    return ['trackingUri', 'config', 'mlsteps']
}

// Keys whose value is a mapping of rules: a Map (passed as JSON, which is YAML) or YAML text.
@NonCPS
private static List<String> ruleKeys() {
    return ['metrics', 'slices', 'schema', 'quality', 'drift']
}

// Rule keys that also take false (the check off).
@NonCPS
private static List<String> switchableKeys() {
    return ['schema', 'drift']
}

// Keys that take several values: a List of strings or one String.
@NonCPS
private static List<String> listKeys() {
    return ['warnOnly', 'mlsteps']
}

// Keys that take true or false (a Boolean, or the String 'true' or 'false').
@NonCPS
private static List<String> booleanKeys() {
    return ['logReport']
}

@NonCPS
private static String invalidKeys(Map userConfig, Map defaultConfig) {
    List<String> known = defaultConfig.keySet()*.toString()
    for (Object key : userConfig.keySet()) {
        if (!known.contains(key.toString())) {
            return "mlGate: unknown key '${key}'; known keys: ${known.join(', ')}"
        }
    }
    for (String key : known) {
        Object value = userConfig[key]
        if (value == null) {
            continue
        }
        boolean isBoolean = value instanceof Boolean || value.toString() in ['true', 'false']
        if (booleanKeys().contains(key) && !isBoolean) {
            return "mlGate: key '${key}' must be true or false, not '${value}'"
        }
        String form = null
        if (switchableKeys().contains(key)) {
            boolean ok = value instanceof Map || value instanceof CharSequence || value instanceof Boolean
            form = ok ? null : 'a Map of rules, YAML text, or false'
        } else if (ruleKeys().contains(key)) {
            form = value instanceof Map || value instanceof CharSequence ? null : 'a Map of rules or YAML text'
        } else if (listKeys().contains(key)) {
            form = value instanceof List || value instanceof CharSequence ? null : 'a List of strings or one String'
        } else if (!booleanKeys().contains(key)) {
            form = value instanceof CharSequence || value instanceof Number ? null : 'a String or a number'
        }
        if (form) {
            return "mlGate: key '${key}' must be ${form}, not ${value.getClass().simpleName}"
        }
    }
    return null
}

/** camelCase key → kebab-case flag: reportDir → --report-dir. */
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
            // JSON is YAML: mlsteps reads the rules as the mapping mlsteps.yaml would hold.
            return [JsonOutput.toJson(value)]
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
private static String gateCommand(Map config, Map defaultConfig) {
    List<String> words = items(config.mlsteps)
    words += ['--ci', 'jenkins']
    if (config.config) {
        words += ['--config', config.config.toString()]
    }
    words << 'gate'
    List<String> flagKeys = defaultConfig.keySet()*.toString() - nonFlagKeys()
    for (String key : flagKeys) {
        // An empty value means "not set", as in the other faces.
        List<String> values = items(config[key]).findAll { String item -> item != '' }
        words += values.collectMany { String item -> [flagOf(key), item] }
    }
    return words.collect { String word -> shellQuote(word) }.join(' ')
}

/** The report files as archiveArtifacts takes them (from the workspace root), or null when
 * the report is outside the workspace. */
@NonCPS
private static String reportArtifacts(String workspace, String here, String report) {
    int slash = report.lastIndexOf('/')
    String dir = slash < 0 ? '.' : (slash == 0 ? '/' : report.substring(0, slash))
    String relative
    if (dir.startsWith('/')) {
        if (!workspace || !(dir == workspace || dir.startsWith(workspace + '/'))) {
            return null
        }
        relative = dir == workspace ? '' : dir.substring(workspace.length() + 1)
    } else {
        String base = (!workspace || here == workspace || !here.startsWith(workspace + '/')) ?
            '' : here.substring(workspace.length() + 1)
        relative = [base, dir == '.' ? '' : dir].findAll { String part -> part }.join('/')
    }
    String prefix = relative ? relative + '/' : ''
    return ['report.md', 'report.json', 'report.png'].collect { String file -> prefix + file }.join(',')
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
private static String failureMessage(int status, Map outputs, String archived) {
    if (status == 3) {
        String candidate = outputs['candidate-version'] ? "version ${outputs['candidate-version']}" : 'the candidate'
        String champion = outputs['champion-version'] ? "version ${outputs['champion-version']}" : 'no champion'
        String report = archived ? "the report is archived (${archived.tokenize(',')[0]})" : 'see the report'
        return "mlGate: the gate rejected ${candidate} (decision: ${outputs.decision ?: 'rejected'}, " +
            "${outputs.failed ?: 'some'} failed checks, compared with ${champion}); ${report}"
    }
    String meaning = [
        1: 'the step failed',
        2: 'bad input or configuration',
        130: 'interrupted',
        143: 'terminated',
    ][status] ?: 'unexpected exit'
    return "mlGate: mlsteps gate exited with code ${status} (${meaning}); see its message above"
}
