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

import mlsteps.jenkins.Cli

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
    Cli cli = new Cli(this, 'mlPromote')
    // The forms a key's value may take (generated from the option table: python -m steps.faces);
    // keys not listed take one String or number.
    Map<String, String> forms = [requireGate: Cli.BOOLEAN, requireApproval: Cli.BOOLEAN, rollback: Cli.BOOLEAN,
                                 mlsteps: Cli.WORDS]
    String problem = cli.invalidKeys(userConfig, defaultConfig, forms, Cli.SCALAR) ?: rollbackProblem(userConfig)
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

    List<String> environment = Cli.mlflowEnvironment(config)

    String script = promoteCommand(config, defaultConfig, command)
    // string() is a pipeline symbol, so the bindings are made here, not in a @NonCPS helper.
    // The tokens reach mlsteps only as variables withCredentials binds (and Jenkins masks). Each
    // *CredentialsId key: the Secret text credential mlsteps reads from the variable named
    // (generated from the option table: python -m steps.faces).
    List bindings = []
    Map<String, String> credentials = [vaultTokenCredentialsId: 'MLSTEPS_PROMOTE_VAULT_TOKEN',
                                       githubTokenCredentialsId: 'MLSTEPS_PROMOTE_GITHUB_TOKEN']
    for (Map binding : Cli.credentialBindings(config, credentials)) {
        bindings << string(credentialsId: binding.credentialsId, variable: binding.variable)
    }
    int status = cli.run(command, script, environment, bindings)
    Map outputs = cli.outputs()
    cli.archiveSummary()
    if (status != 0) {
        // Promote's compare-and-set fails (1) when another promotion moved the champion first.
        String moved = command == 'promote' ? 'the step failed, or another promotion moved the champion first' : null
        error cli.failure(command, status, [1: moved, 3: 'the gate rejected the version'])
    }
    return outputs
}

// Keys of promote that rollback does not take (it has no candidate, gate or approval).
@NonCPS
private static List<String> promoteOnlyKeys() {
    return ['version', 'requireGate', 'gateReportDigest', 'requireApproval', 'approvalEnvironment', 'approvedBy',
            'approvers']
}

@NonCPS
private static String rollbackProblem(Map userConfig) {
    if (userConfig.rollback?.toString() == 'true') {
        List<String> given = promoteOnlyKeys().findAll { String key -> userConfig[key] != null }
        if (given) {
            return 'mlPromote: rollback: true moves the alias back to the version under previousAlias and takes ' +
                "no ${given.join(', ')}; remove ${given.size() == 1 ? 'it' : 'them'}, or promote without rollback"
        }
    }
    return null
}

@NonCPS
private static String promoteCommand(Map config, Map defaultConfig, String command) {
    // Keys that are not flags of either command (generated; rollback takes fewer).
    List<String> notFlags = ['vaultTokenCredentialsId', 'githubTokenCredentialsId', 'trackingUri', 'rollback',
                             'approvers', 'config', 'mlsteps']
    if (command == 'rollback') {
        notFlags += promoteOnlyKeys()
    }
    return Cli.shellLine(Cli.command(config, [command]) + Cli.flags(config, Cli.flagKeys(defaultConfig, notFlags)))
}
