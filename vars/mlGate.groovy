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
import mlsteps.jenkins.Cli

def call(Map userConfig = [:]) {
    Map defaultConfig = [
        modelUri: null,       // the candidate: models:/NAME/VERSION (e.g. from mlPackage), models:/NAME@ALIAS, runs:/…
        championAlias: null,  // alias of the version to compare against; 'none': no champion (mlsteps: champion)
        metrics: null,        // thresholds per metric: a Map like [accuracy: [min: 0.9, 'min-delta': -0.01]], or YAML
        data: null,           // evaluation data (CSV or Parquet): both models scored on the same rows
        target: null,         // the label column of data
        task: null,           // 'auto', 'classification' or 'regression' (mlsteps: auto)
        trainingData: null,   // the training data (CSV or Parquet): the schema's source and drift's reference
        slices: null,         // per-group checks: a Map such as [columns: ['group'], 'max-gap': [recall: 0.1]], or YAML
        schema: null,         // schema check of data: a Map of tolerances, YAML, or false (mlsteps: on when known)
        quality: null,        // quality rules on data: a Map such as ['min-rows': 1000], or YAML
        drift: null,          // drift from trainingData to data: a Map such as [psi: 0.2], YAML, or false
        resamples: null,      // bootstrap resamples for the intervals, 0: none (mlsteps: 1000)
        confidence: null,     // level of the intervals (mlsteps: 0.95)
        seed: null,           // seed of the resampling (mlsteps: derived from the data and the models)
        defaultMargin: null,  // how much worse than the champion a metric without a threshold may be: 0.01 or '1%'
        warnOnly: [],         // checks shown but not enforced: a List of kinds or check names, or 'all'
        reportDir: null,      // where report.md, .json and .png go, archived by this step (mlsteps: mlsteps-gate)
        logReport: null,      // log the report to the candidate's MLflow run, tag the verdict (mlsteps: true)
        trackingUri: null,    // MLflow tracking URI (else MLSTEPS_MLFLOW_TRACKING_URI or MLFLOW_TRACKING_URI)
        name: null,           // registered model name in MLflow: where the champion alias is
        config: null,         // path of an mlsteps.yaml (mlsteps: ./mlsteps.yaml when present)
        mlsteps: 'mlsteps',   // the mlsteps executable: a path, or a List of words ['python3', '-m', 'steps']
    ]
    Cli cli = new Cli(this, 'mlGate')
    // The forms a key's value may take; keys not listed take one String or number. Rules are a
    // Map (passed as JSON, which is YAML) or YAML text; schema and drift also take false (off).
    Map<String, String> forms = [metrics: Cli.RULES, slices: Cli.RULES, schema: Cli.RULES_OR_FALSE,
                                 quality: Cli.RULES, drift: Cli.RULES_OR_FALSE, warnOnly: Cli.WORDS,
                                 logReport: Cli.BOOLEAN, mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    // As in mlTrain, the tracking URI travels as the environment mlsteps reads (withEnv passes it
    // without a shell, so it needs no quoting), not on the command line the console shows.
    List<String> environment = []
    if (config.trackingUri) {
        environment << "MLSTEPS_MLFLOW_TRACKING_URI=${config.trackingUri}".toString()
    }

    int status = cli.run('gate', gateCommand(config, defaultConfig), environment, null)
    // mlsteps writes the outputs on a rejection too (exit 3): the report is archived either way.
    // The summary is not: it is the report's markdown, which the report directory holds already.
    Map outputs = cli.outputs()
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
    if (status == 3) {
        error rejection(outputs, archived)
    }
    if (status != 0) {
        error cli.failure('gate', status, [:])
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

@NonCPS
private static String gateCommand(Map config, Map defaultConfig) {
    // A Map of rules goes as JSON, which is YAML: mlsteps reads it as the mapping mlsteps.yaml
    // would hold (only rule keys take a Map).
    Map given = config.collectEntries { key, value -> [(key): value instanceof Map ? JsonOutput.toJson(value) : value] }
    // Keys that are not `mlsteps gate` flags.
    List<String> notFlags = ['trackingUri', 'config', 'mlsteps']
    return Cli.shellLine(Cli.command(given, ['gate']) + Cli.flags(given, Cli.flagKeys(defaultConfig, notFlags)))
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
        String base = Cli.workspaceDir(workspace, here)
        relative = [base, dir == '.' ? '' : dir].findAll { String part -> part }.join('/')
    }
    String prefix = relative ? relative + '/' : ''
    return ['report.md', 'report.json', 'report.png'].collect { String file -> prefix + file }.join(',')
}

/** A rejection (exit 3) in the gate's words: which version, against which champion, the report. */
@NonCPS
private static String rejection(Map outputs, String archived) {
    String candidate = outputs['candidate-version'] ? "version ${outputs['candidate-version']}" : 'the candidate'
    String champion = outputs['champion-version'] ? "version ${outputs['champion-version']}" : 'no champion'
    String report = archived ? "the report is archived (${archived.tokenize(',')[0]})" : 'see the report'
    return "mlGate: the gate rejected ${candidate} (decision: ${outputs.decision ?: 'rejected'}, " +
        "${outputs.failed ?: 'some'} failed checks, compared with ${champion}); ${report}"
}
