package mlsteps.jenkins

import com.cloudbees.groovy.cps.NonCPS
import groovy.json.JsonOutput

/**
 * What every step of this library does the same way around the mlsteps CLI: check the keys it
 * was given, build the command line, run it with the files mlsteps writes its outputs and summary
 * to, read them back, and word a failure. Each var keeps its call(Map) and what is its own.
 *
 *   Cli cli = new Cli(this, 'mlTrain')   // `this`: the var's script, which holds the steps
 *
 * A class under src/ has no steps of its own: sh, withEnv, readJSON, env … are reached through
 * the script object the var passes in, as Jenkins' shared-library documentation shows. Jenkins
 * CPS-transforms library classes, so the methods that call steps (run, runScript, outputs,
 * archiveSummary) are plain CPS code: no closures but the blocks given to steps, no Groovy
 * iteration methods, and the constructor only stores its arguments (a constructor is not
 * CPS-transformed and may not call CPS code). Everything else is pure work on values: @NonCPS,
 * calls no step. The object lives across steps, so it is Serializable and holds only the script
 * and strings.
 */
// Jenkins compiles library classes for CPS, dynamically: @CompileStatic does not apply.
// groovylint-disable-next-line CompileStatic
class Cli implements Serializable {

    // The forms a key's value may take, named by how a message says them.
    static final String BOOLEAN = 'true or false'
    static final String WORDS = 'a List of strings or one String'
    static final String PAIRS = "a List of 'KEY=VALUE' strings or a Map"
    static final String RULES = 'a Map of rules or YAML text'
    static final String RULES_OR_FALSE = 'a Map of rules, YAML text, or false'
    static final String SCALAR = 'a String or a number'
    static final String SCALAR_OR_BOOLEAN = 'a String, a number or a boolean'

    private static final long serialVersionUID = 1L

    private final Object steps
    private final String step
    private String outputsFile
    private String summaryFile

    Cli(Object steps, String step) {
        this.steps = steps
        this.step = step
    }

    /**
     * The shared MLflow keys (trackingUri, and experiment where the step takes it) as the
     * environment mlsteps reads: withEnv passes it without a shell, so it needs no quoting, and
     * it stays off the command line the console shows.
     */
    @NonCPS
    static List<String> mlflowEnvironment(Map config) {
        List<String> environment = []
        if (config.trackingUri) {
            environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
        }
        if (config.experiment) {
            environment << "MLSTEPS_MLFLOW_EXPERIMENT=${config.experiment}".toString()
        }
        return environment
    }

    /** camelCase key → kebab-case flag: shmSize → --shm-size. */
    @NonCPS
    static String flagOf(String key) {
        return '--' + key.replaceAll('([A-Z])', '-$1').toLowerCase()
    }

    /** A key's value as the words of its flags: a Map as 'key=value' pairs, a List item by item. */
    @NonCPS
    static List<String> items(Object value) {
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

    /**
     * config with the value of each rules key (form RULES or RULES_OR_FALSE) that is a Map as
     * JSON, which is YAML: mlsteps reads it as the mapping mlsteps.yaml would hold. Without this
     * flags() would pass the Map as 'key=value' words.
     */
    @NonCPS
    static Map rulesAsJson(Map config, Map<String, String> forms) {
        return config.collectEntries { key, value ->
            boolean rules = forms[key.toString()] in [RULES, RULES_OR_FALSE]
            [(key): rules && value instanceof Map ? JsonOutput.toJson(value) : value]
        }
    }

    /**
     * The Secret text credentials given (credentials: key → the variable mlsteps reads it from),
     * each as [credentialsId:, variable:] for a string() binding, which the var makes (string() is
     * a pipeline symbol). A credential reaches mlsteps only as a variable withCredentials binds,
     * which Jenkins masks, never on a command line or in a Groovy string.
     */
    @NonCPS
    static List<Map> credentialBindings(Map config, Map<String, String> credentials) {
        List<Map> bindings = []
        credentials.each { String key, String variable ->
            if (config[key]) {
                bindings << [credentialsId: config[key].toString(), variable: variable]
            }
        }
        return bindings
    }

    /** The keys of defaultConfig that are flags: all but the ones named. */
    @NonCPS
    static List<String> flagKeys(Map defaultConfig, List<String> notFlags) {
        return defaultConfig.keySet()*.toString() - notFlags
    }

    /** mlsteps --ci jenkins [--config FILE] COMMAND…, the executable from the key mlsteps. */
    @NonCPS
    static List<String> command(Map config, List<String> command) {
        List<String> words = items(config.mlsteps)
        words += ['--ci', 'jenkins']
        if (config.config) {
            words += ['--config', config.config.toString()]
        }
        return words + command
    }

    /** --flag VALUE for each value of each key; an empty value means "not set", as in the other faces. */
    @NonCPS
    static List<String> flags(Map config, List<String> keys) {
        List<String> words = []
        for (String key : keys) {
            List<String> values = items(config[key]).findAll { String item -> item != '' }
            words += values.collectMany { String item -> [flagOf(key), item] }
        }
        return words
    }

    /** One word for the shell: single-quoted, with each ' written as '\''. */
    @NonCPS
    static String shellQuote(Object word) {
        return "'" + word.toString().replace("'", "'\\''") + "'"
    }

    /** The words as one shell command line, each quoted. */
    @NonCPS
    static String shellLine(List<String> words) {
        return words.collect { String word -> shellQuote(word) }.join(' ')
    }

    /** readJSON gives a JSONObject in Jenkins; callers get a plain Map of strings. */
    @NonCPS
    static Map plainMap(Object json) {
        Map result = [:]
        (json as Map).each { k, v -> result[k.toString()] = v == null ? '' : v.toString() }
        return result
    }

    /** A build tag or the like as a file name. */
    @NonCPS
    static String safeName(String text) {
        return text.replaceAll('[^A-Za-z0-9._-]', '_')
    }

    /** Where here (pwd(), which differs from the workspace in dir()) is below the workspace, or
     * '' when it is the workspace or outside it. */
    @NonCPS
    static String workspaceDir(String workspace, String here) {
        if (!workspace || here == workspace || !here.startsWith(workspace + '/')) {
            return ''
        }
        return here.substring(workspace.length() + 1)
    }

    /** A path relative to here as archiveArtifacts takes it: from the workspace root. */
    @NonCPS
    static String workspacePath(String workspace, String here, String path) {
        String dir = workspaceDir(workspace, here)
        return dir ? dir + '/' + path : path
    }

    /**
     * The first problem with the keys given, or null: a key defaultConfig does not know, or a
     * value not of its form (forms: key → one of the forms above; other keys take otherwise).
     */
    @NonCPS
    String invalidKeys(Map userConfig, Map defaultConfig, Map<String, String> forms, String otherwise) {
        List<String> known = defaultConfig.keySet()*.toString()
        for (Object key : userConfig.keySet()) {
            if (!known.contains(key.toString())) {
                return "${step}: unknown key '${key}'; known keys: ${known.join(', ')}"
            }
        }
        for (String key : known) {
            Object value = userConfig[key]
            String form = forms[key] ?: otherwise
            if (value != null && !fits(value, form)) {
                return form == BOOLEAN ? "${step}: key '${key}' must be true or false, not '${value}'" :
                    "${step}: key '${key}' must be ${form}, not ${value.getClass().simpleName}"
            }
        }
        return null
    }

    /** What mlsteps' exit code means (0 done, 1 failed, 2 bad input, 3 a gate said no), the
     * step's own words first: own[1] = 'the step failed, or …'. */
    @NonCPS
    String failure(String command, int status, Map<Integer, String> own) {
        String meaning = own[status] ?: [
            1: 'the step failed',
            2: 'bad input or configuration',
            3: 'a gate said no',
            130: 'interrupted',
            143: 'terminated',
        ][status] ?: 'unexpected exit'
        return "${step}: mlsteps ${command} exited with code ${status} (${meaning}); see its message above"
    }

    /**
     * Runs the command line (a shell script) as `mlsteps COMMAND` with MLSTEPS_OUTPUTS_FILE and
     * MLSTEPS_SUMMARY_FILE set to files of this call, then the environment given. Returns the
     * exit code.
     */
    int run(String command, String script, List<String> environment, List bindings) {
        String name = "${command}-${safeName(steps.env.BUILD_TAG ?: 'build')}-${UUID.randomUUID().toString().take(8)}"
        outputsFile = ".mlsteps/outputs/${name}.json"
        summaryFile = ".mlsteps/summary/${name}.md"
        List<String> withFiles = [
            "MLSTEPS_OUTPUTS_FILE=${outputsFile}".toString(),
            "MLSTEPS_SUMMARY_FILE=${summaryFile}".toString(),
        ]
        withFiles.addAll(environment)
        return runScript("mlsteps ${command}", script, withFiles, bindings)
    }

    /**
     * sh(script) with the environment given (withEnv passes it without a shell: no quoting),
     * inside withCredentials(bindings) unless bindings is null. Returns the exit code.
     */
    int runScript(String label, String script, List<String> environment, List bindings) {
        // The blocks use locals only, not this object's fields.
        Object pipeline = steps
        int status = 0
        if (bindings == null) {
            pipeline.withEnv(environment) {
                status = pipeline.sh(script: script, returnStatus: true, label: label)
            }
        } else {
            pipeline.withCredentials(bindings) {
                pipeline.withEnv(environment) {
                    status = pipeline.sh(script: script, returnStatus: true, label: label)
                }
            }
        }
        return status
    }

    /** The outputs mlsteps wrote (on a failure too, as far as it got), or [:]. */
    Map outputs() {
        if (steps.fileExists(outputsFile)) {
            return plainMap(steps.readJSON(file: outputsFile))
        }
        return [:]
    }

    /** Archives the summary mlsteps wrote, if it wrote one. */
    void archiveSummary() {
        if (steps.fileExists(summaryFile)) {
            // archiveArtifacts takes paths from the workspace root, which differs from here in dir().
            String artifact = workspacePath(steps.env.WORKSPACE, steps.pwd(), summaryFile)
            steps.archiveArtifacts(artifacts: artifact, allowEmptyArchive: true, fingerprint: false)
        }
    }

    /** Whether a non-null value has one of a form's types. */
    @NonCPS
    private static boolean fits(Object value, String form) {
        switch (form) {
            case BOOLEAN:
                return value instanceof Boolean || value.toString() in ['true', 'false']
            case WORDS:
                return value instanceof List || value instanceof CharSequence
            case PAIRS:
                return value instanceof List || value instanceof CharSequence || value instanceof Map
            case RULES:
                return value instanceof Map || value instanceof CharSequence
            case RULES_OR_FALSE:
                return value instanceof Map || value instanceof CharSequence || value instanceof Boolean
            case SCALAR_OR_BOOLEAN:
                return value instanceof CharSequence || value instanceof Number || value instanceof Boolean
            default:
                return value instanceof CharSequence || value instanceof Number
        }
    }

}
