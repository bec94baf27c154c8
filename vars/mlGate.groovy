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

import mlsteps.jenkins.Cli

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
    Cli cli = new Cli(this, 'mlGate')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    // Rules are a Map (passed as JSON, which is YAML) or YAML text; schema and drift also take
    // false (off).
    Map<String, String> forms = [metrics: Cli.RULES, slices: Cli.RULES, schema: Cli.RULES_OR_FALSE, quality: Cli.RULES,
                                 drift: Cli.RULES_OR_FALSE, warnOnly: Cli.WORDS, logReport: Cli.BOOLEAN,
                                 mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR)
    if (problem) {
        error problem
    }
    Map config = defaultConfig + userConfig

    List<String> environment = Cli.mlflowEnvironment(config)

    int status = cli.run('gate', gateCommand(config, defaultConfig, forms), environment, null)
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
    // The outputs mlsteps gate writes (generated).
    List<String> outputKeys = ['decision', 'candidate-version', 'champion-version', 'report', 'report-digest', 'failed']
    for (String key : outputKeys) {
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

/** report-digest → MLGATE_REPORT_DIGEST. */
@NonCPS
private static String envName(String key) {
    return 'MLGATE_' + key.toUpperCase().replace('-', '_')
}

@NonCPS
private static String gateCommand(Map config, Map defaultConfig, Map<String, String> forms) {
    Map given = Cli.rulesAsJson(config, forms)
    // Keys that are not `mlsteps gate` flags (generated).
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
